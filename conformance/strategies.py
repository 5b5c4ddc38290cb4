"""Hypothesis strategies over the whole parameter space of the four ops.

The random generators of :mod:`.cases` (:func:`~.cases.random_case`,
:func:`~.cases.random_transpose_case`, :func:`~.cases.random_patches_case`,
:func:`~.cases.random_local_case`) draw every parameter from a NumPy
``Generator``: spatial dims, layouts (default, strings, permuted,
:class:`~polyconv.ConvDimensionNumbers`), named, explicit and negative
padding, both dilations, strides, feature and batch groups, zero-size axes.
Here they draw from Hypothesis instead, through :class:`DrawRng`, which
answers the same ``Generator`` calls with Hypothesis draws.  So the space is
the same as the seeded random cases', and a failing example shrinks
(towards fewer dims, smaller sizes, no dilation, the default layout).  The
operands' values come from the drawn case seed; the dtype is drawn from
the list given.

Examples
--------
>>> from hypothesis import given, settings
>>> @settings(max_examples=5, derandomize=True, database=None)
... @given(conv_cases(dtypes=("float32",)))
... def shapes_are_consistent(case):
...     lhs, rhs = case.operands()
...     assert lhs.ndim == rhs.ndim
>>> shapes_are_consistent()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

from . import cases

__all__ = ["DrawRng", "conv_cases", "transpose_cases", "patches_cases", "local_cases"]


class DrawRng:
    """The part of ``numpy.random.Generator`` the case generators use
    (``integers``, ``random``, ``choice``, ``permutation``), answered by
    Hypothesis's ``draw``."""

    def __init__(self, draw: Any) -> None:
        self._draw = draw

    def integers(self, low: int, high: int | None = None, size: int | None = None) -> Any:
        if high is None:
            low, high = 0, low
        one = st.integers(int(low), int(high) - 1)
        if size is None:
            return self._draw(one)
        return np.array(self._draw(st.lists(one, min_size=int(size), max_size=int(size))))

    def random(self) -> float:
        return float(self._draw(st.floats(0.0, 1.0, exclude_max=True)))

    def choice(self, options: Sequence[Any], p: Sequence[float] | None = None) -> Any:
        allowed = [o for i, o in enumerate(options) if p is None or p[i] > 0]
        return self._draw(st.sampled_from(allowed))

    def permutation(self, items: Sequence[Any]) -> list[Any]:
        return list(self._draw(st.permutations(list(items))))


def _dtype(draw: Any, dtypes: Sequence[str]) -> str:
    return str(draw(st.sampled_from(list(dtypes))))


@st.composite
def conv_cases(draw: Any, dtypes: Sequence[str] = ("float64",), max_spatial: int = 3) -> cases.ConvCase:
    """``conv_general_dilated`` cases (:func:`~.cases.random_case`'s space)."""
    dtype = _dtype(draw, dtypes)
    return cases.random_case(DrawRng(draw), dtype, max_spatial, index=0)  # type: ignore[arg-type]


@st.composite
def transpose_cases(draw: Any, dtypes: Sequence[str] = ("float64",), max_spatial: int = 3) -> cases.TransposeCase:
    """``conv_transpose`` cases (:func:`~.cases.random_transpose_case`'s space)."""
    dtype = _dtype(draw, dtypes)
    return cases.random_transpose_case(DrawRng(draw), dtype, 0, max_spatial)  # type: ignore[arg-type]


@st.composite
def patches_cases(draw: Any, dtypes: Sequence[str] = ("float64",), max_spatial: int = 3) -> cases.PatchesCase:
    """``conv_general_dilated_patches`` cases (:func:`~.cases.random_patches_case`'s space)."""
    dtype = _dtype(draw, dtypes)
    return cases.random_patches_case(DrawRng(draw), dtype, 0, max_spatial)  # type: ignore[arg-type]


@st.composite
def local_cases(draw: Any, dtypes: Sequence[str] = ("float64",), max_spatial: int = 3) -> cases.LocalCase:
    """``conv_general_dilated_local`` cases (:func:`~.cases.random_local_case`'s space)."""
    dtype = _dtype(draw, dtypes)
    return cases.random_local_case(DrawRng(draw), dtype, 0, max_spatial)  # type: ignore[arg-type]

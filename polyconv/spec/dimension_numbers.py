"""Dimension numbers: which axis of each operand is batch, feature, spatial.

Follows ``jax.lax``: ``dimension_numbers`` is None, a
:class:`ConvDimensionNumbers` of index tuples, or three strings such as
``('NHWC', 'HWIO', 'NHWC')``.  Spatial axes are ordered as the spatial
letters appear in the rhs string; strides, dilations and padding follow that
order.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..errors import ConvArgumentError, ConvShapeError, ConvTypeError

__all__ = [
    "ConvDimensionNumbers",
    "spatial_letters",
    "conv_dimension_numbers",
    "conv_general_permutations",
    "channels_last",
    "inverse_permutation",
]

_PARAM = "dimension_numbers"


class ConvDimensionNumbers(NamedTuple):
    """Axis permutations of lhs, rhs and output, as in ``jax.lax``.

    Each spec is a tuple of axis indices: ``lhs_spec = (batch, feature,
    *spatial)``, ``rhs_spec = (out feature, in feature, *spatial)``,
    ``out_spec = (batch, feature, *spatial)``.

    Examples
    --------
    >>> conv_dimension_numbers((1, 5, 5, 3), (3, 3, 3, 8), ('NHWC', 'HWIO', 'NHWC'))
    ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))
    """

    lhs_spec: tuple[int, ...]
    rhs_spec: tuple[int, ...]
    out_spec: tuple[int, ...]


def channels_last(spatial: str) -> tuple[str, str, str]:
    """Channels-last dimension numbers with the spatial letters ``spatial``.

    The callers choose the letters: ``conv_transpose``'s defaults are
    TensorFlow's, the layers' are Flax's; the permutations they give depend
    only on the number of letters.

    Examples
    --------
    >>> channels_last('HW')
    ('NHWC', 'HWIO', 'NHWC')
    """
    return f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"


def spatial_letters(n: int) -> str:
    """The letters of ``n`` spatial axes in layout strings: TensorFlow's
    ``H``, ``HW``, ``HWD`` up to three, ``a``, ``b``, ... beyond.

    Examples
    --------
    >>> spatial_letters(2), spatial_letters(4)
    ('HW', 'abcd')
    """
    return "HWD"[:n] if n <= 3 else "".join(chr(ord("a") + i) for i in range(n))


def inverse_permutation(perm: Sequence[int]) -> tuple[int, ...]:
    """The permutation that undoes ``perm``: ``inverse[perm[i]] == i``.

    Examples
    --------
    >>> inverse_permutation((0, 3, 1, 2))
    (0, 2, 3, 1)
    """
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def conv_general_permutations(
    dimension_numbers: tuple[str, str, str], op: str = "conv_general_dilated"
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Turn three dimension strings into lhs, rhs and output permutations."""
    specs = dimension_numbers
    for i, (spec, pair) in enumerate(zip(specs, (("N", "C"), ("O", "I"), ("N", "C")))):
        if not isinstance(spec, str):
            raise ConvTypeError(op, f"{_PARAM}[{i}]", "must be a string", spec)
        a, b = pair
        if spec.count(a) != 1 or spec.count(b) != 1:
            raise ConvArgumentError(
                op, f"{_PARAM}[{i}]", f"must contain the letters {a!r} and {b!r} exactly once", spec
            )
        if len(set(spec)) != len(spec):
            raise ConvArgumentError(op, f"{_PARAM}[{i}]", "must not repeat a letter", spec)
    lhs_s, rhs_s, out_s = specs
    spatial = [set(s) - set(p) for s, p in zip(specs, ("NC", "OI", "NC"))]
    if not spatial[0] == spatial[1] == spatial[2]:
        raise ConvArgumentError(
            op, _PARAM, "must name the same spatial letters in all three strings", tuple(specs)
        )

    def perm(spec: str, pair: str) -> tuple[int, ...]:
        axes = [i for i, c in enumerate(spec) if c not in pair]
        axes.sort(key=lambda i: rhs_s.index(spec[i]))
        return (spec.index(pair[0]), spec.index(pair[1]), *axes)

    return perm(lhs_s, "NC"), perm(rhs_s, "OI"), perm(out_s, "NC")


def conv_dimension_numbers(
    lhs_shape: Sequence[int],
    rhs_shape: Sequence[int],
    dimension_numbers: Any,
    op: str = "conv_general_dilated",
    shapes: str | None = None,
) -> ConvDimensionNumbers:
    """Normalise ``dimension_numbers`` into a :class:`ConvDimensionNumbers`.

    Parameters
    ----------
    lhs_shape, rhs_shape
        Operand shapes (only their ranks are read).
    dimension_numbers
        None (``NC<spatial>``, ``OI<spatial>``, ``NC<spatial>``), a
        ``ConvDimensionNumbers`` or a triple of strings.
    shapes
        How error messages describe the operands (default: both shapes),
        for ops whose kernel is built rather than given.

    Examples
    --------
    >>> conv_dimension_numbers((2, 3, 8), (4, 3, 3), None)
    ConvDimensionNumbers(lhs_spec=(0, 1, 2), rhs_spec=(0, 1, 2), out_spec=(0, 1, 2))
    """
    nd = len(lhs_shape)
    if len(rhs_shape) != nd:
        raise ConvShapeError(
            op, "rhs", f"must have the same rank as lhs (lhs shape {tuple(lhs_shape)})", got=str(tuple(rhs_shape))
        )
    if nd < 2:
        raise ConvShapeError(
            op, "lhs", "must have rank >= 2 (batch and feature axes)", got=f"shape {tuple(lhs_shape)}"
        )
    if dimension_numbers is None:
        default = tuple(range(nd))
        return ConvDimensionNumbers(default, default, default)
    if isinstance(dimension_numbers, ConvDimensionNumbers) or _is_index_triple(dimension_numbers):
        return _check_index_triple(dimension_numbers, nd, op)
    if (
        isinstance(dimension_numbers, (tuple, list))
        and len(dimension_numbers) == 3
        and all(isinstance(s, str) for s in dimension_numbers)
    ):
        for i, s in enumerate(dimension_numbers):
            if len(s) != nd:
                raise ConvArgumentError(
                    op,
                    f"{_PARAM}[{i}]",
                    f"must have one letter per operand axis ({nd} for "
                    f"{shapes or f'shapes {tuple(lhs_shape)} and {tuple(rhs_shape)}'})",
                    s,
                )
        return ConvDimensionNumbers(*conv_general_permutations(tuple(dimension_numbers), op))
    raise ConvTypeError(
        op, _PARAM, "must be None, a ConvDimensionNumbers or three strings such as ('NCHW', 'OIHW', 'NCHW')",
        dimension_numbers,
    )


def _is_index_triple(dn: Any) -> bool:
    return (
        isinstance(dn, (tuple, list))
        and len(dn) == 3
        and all(isinstance(s, (tuple, list)) for s in dn)
    )


def _check_index_triple(dn: Any, nd: int, op: str) -> ConvDimensionNumbers:
    specs = []
    for i, spec in enumerate(dn):
        try:
            spec = tuple(operator.index(a) for a in spec)
        except TypeError:
            raise ConvTypeError(op, f"{_PARAM}[{i}]", "must be a tuple of axis indices", spec) from None
        if sorted(spec) != list(range(nd)):
            raise ConvArgumentError(
                op, f"{_PARAM}[{i}]", f"must be a permutation of range({nd})", spec
            )
        specs.append(spec)
    return ConvDimensionNumbers(*specs)

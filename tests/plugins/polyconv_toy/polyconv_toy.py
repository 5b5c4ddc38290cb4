"""polyconv-toy: the smallest complete polyconv backend.

It is both a test fixture and the worked example of how to write a backend
plugin.  A backend plugin is three things:

1. an entry point in the group ``polyconv.backends`` naming an object (here
   ``toy = "polyconv_toy:backend"`` in ``pyproject.toml``);
2. that object: a :class:`polyconv.Backend` with a ``name`` equal to the
   entry-point name, a :class:`polyconv.Manifest` declaring what it supports,
   ``owns`` (which arrays are its own), ``asarray`` (Python lists into its
   arrays), ``device``, ``from_numpy`` and ``to_numpy`` (how the conformance
   suite makes operands and reads results) and the one primitive
   ``conv_general_dilated(lhs, rhs, spec)``;
3. a module that is cheap to import: it may not import its framework at
   import time.  (The "framework" here is the :class:`ToyArray` defined below,
   so nothing beyond NumPy and polyconv is imported.)

polyconv has already validated every argument into ``spec`` (a
:class:`polyconv.ConvSpec`) and checked it against the manifest before the
primitive runs, so the primitive only computes.  The toy computes with
polyconv's reference semantics, so its results equal the NumPy backend's.

Examples
--------
>>> import numpy as np, polyconv
>>> from polyconv_toy import ToyArray
>>> x = ToyArray(np.arange(5.0).reshape(1, 1, 5), device="toy:1")
>>> w = ToyArray(np.array([1.0, 0.0, -1.0]).reshape(1, 1, 3), device="toy:1")
>>> y = polyconv.conv_general_dilated(x, w, (1,), 'VALID')
>>> y
ToyArray([[[-2.0, -2.0, -2.0]]], dtype=float64, device='toy:1')
"""

from __future__ import annotations

from typing import Any

import numpy as np

import polyconv
from polyconv.spec import ConvSpec

__all__ = ["ToyArray", "ToyBackend", "backend"]

__version__ = "0.1.0"


class ToyArray:
    """An array of the toy "framework": a NumPy array on a named fake device.

    Deliberately *not* a NumPy array (no ``__array__``), so polyconv's NumPy
    backend does not own it and mixing it with NumPy arrays is an error.
    """

    def __init__(self, data: Any, device: str = "toy:0") -> None:
        self._data = np.asarray(data)
        self.device = device

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def numpy(self) -> np.ndarray:
        """The values, as a NumPy array."""
        return self._data

    def __repr__(self) -> str:
        return f"ToyArray({self._data.tolist()!r}, dtype={self.dtype}, device={self.device!r})"


class ToyBackend(polyconv.Backend):
    """Runs on :class:`ToyArray` operands, float32 and float64 only."""

    name = "toy"  # must equal the entry-point name

    manifest = polyconv.Manifest(
        dtypes=frozenset({"float32", "float64"}),
        devices=("toy",),
        ops=frozenset({"conv_general_dilated"}),
        # No optional features: polyconv raises UnsupportedFeatureError for
        # lhs_dilation, grouped convolutions and preferred_element_type before
        # this backend is called.
        features=frozenset(),
        # ToyArray has no array-API namespace, so polyconv cannot derive the
        # other ops (conv_transpose, patches, local, the VJP) from the
        # primitive: they are declared unsupported.
        derived=False,
        notes=("a test fixture: computes with polyconv's reference semantics",),
    )

    def owns(self, x: Any) -> bool:
        # A real backend checks sys.modules first so that it never imports its
        # framework just to answer "no" (see polyconv.Backend.owns).
        return isinstance(x, ToyArray)

    def asarray(self, x: Any, like: Any = None) -> ToyArray:
        # a Python list joins the other operand's device (default "toy:0")
        return ToyArray(np.asarray(x), device="toy:0" if like is None else like.device)

    def device(self, x: Any) -> str:
        return str(x.device)

    # The conformance suite feeds every backend the same NumPy operands and
    # reads results back through these two.
    def from_numpy(self, a: Any, device: str | None = None) -> ToyArray:
        return ToyArray(np.array(a, copy=True), device=device or "toy:0")

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.array(x.numpy(), copy=True)

    def version(self) -> str:
        return __version__

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> ToyArray:
        # Imported here, not at module import: the conformance package is only
        # needed once the backend computes.
        from polyconv.conformance import reference

        out = reference.conv_from_spec(lhs.numpy(), rhs.numpy(), spec)
        return ToyArray(reference.cast_result(out, spec.out_dtype), device=lhs.device)


#: The object the entry point names.
backend = ToyBackend()

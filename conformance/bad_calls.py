"""Bad calls: every one must raise the same polyconv error on every backend.

Each :class:`BadCall` is an invalid call of one op, as plain data.  The
check (:func:`check_bad_call`) makes it twice, once with NumPy operands on
the NumPy backend and once with the backend's own arrays and ``backend=``
its name, and passes when both raise a polyconv error of the same class
with the same message (polyconv validates every argument before any backend
runs, so a backend can only break this by letting its own error escape, or
by doing something before validation).

Examples
--------
>>> from polyconv.registry import registry
>>> check_bad_call(registry.load("numpy"), BAD_CALLS[0]).status
'pass'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

import polyconv
from polyconv.backend import Backend
from polyconv.errors import PolyconvError, UnsupportedDtypeError

from .checks import Outcome

__all__ = ["BadCall", "BAD_CALLS", "check_bad_call"]


@dataclass(frozen=True)
class BadCall:
    """An invalid call of ``op`` on operands of the given shapes (and dtypes,
    float32 by default) with keyword arguments ``kwargs``."""

    name: str
    op: str
    shapes: tuple[tuple[int, ...], ...]
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    dtypes: tuple[str, ...] = ()

    def operands(self) -> list[np.ndarray]:
        rng = np.random.default_rng(0)
        dtypes = self.dtypes or ("float32",) * len(self.shapes)
        return [rng.standard_normal(s).astype(d) for s, d in zip(self.shapes, dtypes)]

    def __str__(self) -> str:
        return self.name


_X, _W, _G = (2, 4, 5, 5), (6, 4, 3, 3), (2, 6, 3, 3)  # NCHW input, OIHW kernel, VALID output
_S = {"window_strides": (1, 1), "padding": "VALID"}
_CONV = "conv_general_dilated"
_T, _TW = (2, 5, 5, 4), (3, 3, 4, 6)  # conv_transpose's default NHWC / HWIO
_P = "conv_general_dilated_patches"
_L, _LW = "conv_general_dilated_local", (5, 36, 3, 3)  # 4 channels * 9 taps, 3 x 3 output positions
_V = "conv_general_dilated_vjp"

#: The table: each parameter of each op, wrong in the ways users get it wrong.
BAD_CALLS: tuple[BadCall, ...] = (
    BadCall("conv-rank-mismatch", _CONV, ((2, 4, 5), _W), _S),
    BadCall("conv-features-mismatch", _CONV, ((2, 3, 5, 5), _W), _S),
    BadCall("conv-dtype-mismatch", _CONV, (_X, _W), _S, ("float32", "float64")),
    BadCall("conv-bad-padding-name", _CONV, (_X, _W), {**_S, "padding": "FULL"}),
    BadCall("conv-padding-wrong-length", _CONV, (_X, _W), {**_S, "padding": ((1, 1),)}),
    BadCall("conv-padding-not-pairs", _CONV, (_X, _W), {**_S, "padding": (1, 1)}),
    BadCall("conv-stride-zero", _CONV, (_X, _W), {**_S, "window_strides": (0, 1)}),
    BadCall("conv-stride-wrong-length", _CONV, (_X, _W), {**_S, "window_strides": (1,)}),
    BadCall("conv-stride-float", _CONV, (_X, _W), {**_S, "window_strides": (1.0, 1)}),
    BadCall("conv-lhs-dilation-zero", _CONV, (_X, _W), {**_S, "lhs_dilation": (0, 1)}),
    BadCall("conv-rhs-dilation-negative", _CONV, (_X, _W), {**_S, "rhs_dilation": (1, -2)}),
    BadCall("conv-groups-not-dividing", _CONV, (_X, (6, 2, 3, 3)), {**_S, "feature_group_count": 3}),
    BadCall("conv-groups-zero", _CONV, (_X, _W), {**_S, "feature_group_count": 0}),
    BadCall("conv-batch-groups-not-dividing-batch", _CONV, ((3, 4, 5, 5), _W), {**_S, "batch_group_count": 2}),
    BadCall("conv-both-group-kinds", _CONV, ((4, 4, 5, 5), (6, 2, 3, 3)),
            {**_S, "feature_group_count": 2, "batch_group_count": 2}),
    BadCall("conv-bad-layout-letters", _CONV, (_X, _W), {**_S, "dimension_numbers": ("NCHW", "OIHW", "NCXY")}),
    BadCall("conv-layout-repeated-letter", _CONV, (_X, _W), {**_S, "dimension_numbers": ("NCHH", "OIHW", "NCHW")}),
    BadCall("conv-bad-precision", _CONV, (_X, _W), {**_S, "precision": "ultra"}),
    BadCall("conv-preferred-narrower", _CONV, (_X, _W), {**_S, "preferred_element_type": "float16"}),
    BadCall("conv-preferred-not-a-dtype", _CONV, (_X, _W), {**_S, "preferred_element_type": "float31"}),
    BadCall("conv-empty-window", _CONV, (_X, (6, 4, 0, 3)), _S),
    BadCall("conv-padding-crops-everything", _CONV, (_X, _W), {**_S, "padding": ((-4, -4), (0, 0))}),
    BadCall("transpose-bad-padding", "conv_transpose", (_T, _TW), {"strides": (2, 2), "padding": "FULL"}),
    BadCall("transpose-strides-wrong-length", "conv_transpose", (_T, _TW), {"strides": (2,), "padding": "SAME"}),
    BadCall("transpose-features-mismatch", "conv_transpose", (_T, (3, 3, 5, 6)),
            {"strides": (2, 2), "padding": "SAME"}),
    BadCall("transpose-kernel-switch-not-bool", "conv_transpose", (_T, _TW),
            {"strides": (2, 2), "padding": "SAME", "transpose_kernel": 1}),
    BadCall("patches-filter-wrong-length", _P, (_X,), {"filter_shape": (3,), **_S}),
    BadCall("patches-filter-zero", _P, (_X,), {"filter_shape": (0, 3), **_S}),
    BadCall("patches-bad-padding", _P, (_X,), {"filter_shape": (3, 3), **_S, "padding": "FULL"}),
    BadCall("local-kernel-wrong-positions", _L, (_X, (5, 36, 2, 3)), {"filter_shape": (3, 3), **_S}),
    BadCall("local-kernel-wrong-features", _L, (_X, (5, 35, 3, 3)), {"filter_shape": (3, 3), **_S}),
    BadCall("local-dtype-mismatch", _L, (_X, _LW), {"filter_shape": (3, 3), **_S}, ("float64", "float32")),
    BadCall("vjp-cotangent-wrong-shape", _V, (_X, _W, (2, 6, 4, 3)), _S),
    BadCall("vjp-cotangent-wrong-dtype", _V, (_X, _W, _G), _S, ("float32", "float32", "float64")),
    BadCall("vjp-bad-padding", _V, (_X, _W, _G), {**_S, "padding": "FULL"}),
    # valid calls whose output no array can hold: refused before anything is allocated
    BadCall("conv-output-past-any-address", _CONV, (_X, _W), {**_S, "padding": ((2**62, 2**62), (0, 0))}),
    BadCall("conv-output-past-int64", _CONV, (_X, _W), {**_S, "padding": ((2**70, 0), (0, 0))}),
    BadCall("transpose-output-past-any-address", "conv_transpose", (_T, _TW),
            {"strides": (2**61, 1), "padding": "SAME"}),
    BadCall("patches-output-past-any-address", _P, (_X,),
            {"filter_shape": (3, 3), **_S, "padding": ((2**61, 2**61), (0, 0))}),
)


def _error(call: Any) -> BaseException | None:
    try:
        call()
    except Exception as exc:
        return exc
    return None


def check_bad_call(be: Backend, bad: BadCall, device: str | None = None) -> Outcome:
    """Make ``bad`` with NumPy operands (NumPy backend) and with ``be``'s arrays
    (``backend=be.name``): ``pass`` when both raise the same polyconv error
    class with the same message; ``unsupported`` when ``be`` cannot even hold
    the operands' dtype and says so with :class:`UnsupportedDtypeError`."""
    op = getattr(polyconv, bad.op)
    operands = bad.operands()
    want = _error(lambda: op(*operands, **bad.kwargs))
    if not isinstance(want, PolyconvError):
        return Outcome("fail", f"the table's call {bad.name} is not an error on NumPy: {want!r}")
    try:
        arrays = [be.from_numpy(a, device) for a in operands]
    except UnsupportedDtypeError as exc:
        return Outcome("unsupported", f"from_numpy: {exc}")
    got = _error(lambda: op(*arrays, **bad.kwargs, backend=be.name))
    snippet = (
        f"import numpy as np\nimport polyconv\nfrom polyconv.conformance.bad_calls import BAD_CALLS\n"
        f"from polyconv.registry import registry\n\n"
        f"bad = next(b for b in BAD_CALLS if b.name == {bad.name!r})\n"
        f"be = registry.load({be.name!r})\nop = getattr(polyconv, bad.op)\n"
        f"args = [be.from_numpy(a, {device!r}) for a in bad.operands()]\n"
        f"op(*bad.operands(), **bad.kwargs)  # NumPy: raises {type(want).__name__}\n"
        f"op(*args, **bad.kwargs, backend={be.name!r})  # must raise the same error\n"
    )
    if got is None:
        return Outcome("fail", f"{bad.op} returned a result; NumPy raises {type(want).__name__}: {want}", snippet)
    if type(got) is not type(want) or str(got) != str(want):
        return Outcome(
            "fail", f"{bad.op} raised {type(got).__module__}.{type(got).__name__}: {got}\n"
            f"NumPy raises {type(want).__module__}.{type(want).__name__}: {want}", snippet,
        )
    return Outcome("pass")

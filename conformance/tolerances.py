"""How close a backend's result must be to the reference.

Integer and boolean results must be exact.  For floating and complex results
the bound is relative to the *magnitude* of the convolution, the reference
convolution of ``|lhs|`` with ``|rhs|`` (computed in float64), which is the
quantity rounding errors scale with: cancellation in the true result does not
make the check fail, and a wrong value is caught however small it is.

For one output element with ``K`` products (the window size times the
channels of a group), the allowed error is::

    magnitude * (2 * u_in + 4 * sqrt(K) * u_acc + u_out) + tiny

* ``u_in``: rounding of the operands before multiplying.  Zero, unless the
  backend declares ``reduced_precision`` in its manifest *and* the call's
  precision allows it: float32 and complex64 at ``'default'`` precision may
  be rounded to bfloat16 (2**-8, as TPUs do), at ``'high'`` to TF32 (2**-11,
  as GPUs do).  ``'highest'`` allows nothing.
* ``u_acc``: the unit roundoff of the accumulation: float32 for 16-bit and
  32-bit floats (16-bit for reduced-precision backends, since some GPU
  kernels accumulate half in half), float64 for 64-bit.  ``sqrt(K)`` is the
  usual growth of blocked and pairwise sums; 4 is the safety factor.
* ``u_out``: the rounding of the result to the output dtype.
* ``tiny``: the smallest normal number of the output dtype, for zeros.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from polyconv.spec import ConvSpec, dtype_kind

from . import reference

__all__ = ["UNIT_ROUNDOFF", "tolerance", "check_close", "assert_close"]

UNIT_ROUNDOFF = {
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
    "float32": 2.0**-24,
    "float64": 2.0**-53,
    "complex64": 2.0**-24,
    "complex128": 2.0**-53,
}
_TINY = {"float16": 6.1e-5, "bfloat16": 1.2e-38, "float32": 1.2e-38, "float64": 2.3e-308}
_REDUCED_INPUT = {"default": 2.0**-8, "high": 2.0**-11, "highest": 0.0}


def _real(name: str) -> str:
    return {"complex64": "float32", "complex128": "float64"}.get(name, name)


def tolerance(spec: ConvSpec, reduced_precision: bool = False) -> float:
    """Relative bound (times the magnitude) for ``spec``'s floating result."""
    k = spec.in_features // spec.feature_group_count * math.prod(spec.window)
    dt, out = _real(spec.dtype), _real(spec.out_dtype)
    u_in = 0.0
    if reduced_precision and dt == "float32":
        level = "default" if spec.precision is None else min(
            spec.precision, key=("default", "high", "highest").index
        )
        u_in = _REDUCED_INPUT[level]
    if dtype_kind(spec.dtype) in "iub":
        u_acc = UNIT_ROUNDOFF["float32"] if out in ("float16", "bfloat16", "float32") else UNIT_ROUNDOFF["float64"]
    elif dt == "float64" or out == "float64":
        u_acc = UNIT_ROUNDOFF["float64"]
    elif reduced_precision and dt in ("float16", "bfloat16"):
        u_acc = UNIT_ROUNDOFF[dt]
    else:
        u_acc = UNIT_ROUNDOFF["float32"]
    return 2 * u_in + 4 * math.sqrt(max(k, 1)) * u_acc + UNIT_ROUNDOFF[out]


def check_close(actual: Any, lhs: Any, rhs: Any, spec: ConvSpec, reduced_precision: bool = False) -> str | None:
    """None if ``actual`` matches the reference for ``spec``, else a description
    of the worst mismatch.  ``actual``, ``lhs`` and ``rhs`` are NumPy arrays."""
    actual = np.asarray(actual)
    if actual.shape != spec.out_shape:
        return f"shape {actual.shape}, expected {spec.out_shape}"
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    exact = reference.conv_from_spec(lhs, rhs, spec)
    if dtype_kind(spec.out_dtype) in "iub":
        expected = reference.cast_result(exact, spec.out_dtype)
        bad = actual != expected
        if not bad.any():
            return None
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        return f"{int(bad.sum())} of {bad.size} elements differ; at {i}: got {actual[i]!r}, expected {expected[i]!r}"
    magnitude = reference.conv_from_spec(np.abs(lhs), np.abs(rhs), spec).real
    bound = tolerance(spec, reduced_precision) * magnitude + _TINY[_real(spec.out_dtype)]
    got = actual.astype(np.complex128 if np.iscomplexobj(actual) else np.float64)
    err = np.abs(got - exact)
    bad = ~(err <= bound)  # NaN counts as bad
    if not bad.any():
        return None
    i = tuple(int(v) for v in np.unravel_index(np.argmax(np.where(bad, err / bound, 0)), err.shape))
    return (
        f"{int(bad.sum())} of {bad.size} elements out of tolerance; worst at {i}: got {got[i]!r}, "
        f"expected {exact[i]!r} (error {err[i]:.3g}, allowed {bound[i]:.3g})"
    )


def assert_close(actual: Any, lhs: Any, rhs: Any, spec: ConvSpec, reduced_precision: bool = False) -> None:
    """Raise ``AssertionError`` with the worst mismatch unless ``actual`` matches."""
    problem = check_close(actual, lhs, rhs, spec, reduced_precision)
    if problem is not None:
        raise AssertionError(problem)

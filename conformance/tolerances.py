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
  backend declares ``reduced_precision`` in its manifest, the operands are
  off the CPU *and* the call's precision allows it: float32 and complex64 at
  ``'default'`` precision may be rounded to bfloat16 (2**-8, as TPUs do), at
  ``'high'`` to TF32 (2**-11, as GPUs do).  ``'highest'`` allows nothing.
* ``u_acc``: the unit roundoff of the accumulation: float32 for 16-bit and
  32-bit floats, float64 for 64-bit.  float16 and bfloat16 products may be
  summed in their own type (their own roundoff) where the backend declares
  ``half_accumulation`` (on every device: a CPU framework that sums half in
  half) or ``reduced_precision`` (off the CPU: some GPU kernels do).
  ``sqrt(K)`` is the usual growth of blocked and pairwise sums; 4 is the
  safety factor.
* ``u_out``: the rounding of the result to the output dtype.
* ``tiny``: the smallest normal number of the output dtype, for zeros.

plus ``(K - 1) * u_acc * |y|`` (:func:`drift_for`, ``y`` the exact result):
a plain running sum, which rounds its growing total at each of its ``K - 1``
additions, is a valid way to accumulate, and where the products share a
sign its roundings all go one way (XLA:CPU in JAX 0.12 sums 2049 products
of 127 * 127 in float32 to 1009 below the exact value, 2.8 times the
``4 * sqrt(K)`` term).  Where the products cancel, ``|y|`` is smaller than
the magnitude and this term shrinks with it: for random signs it is about
``sqrt(K) * u_acc`` times the magnitude, the size of the first term.

Non-finite values follow the reference's rule (:mod:`.reference`: padding
and the holes of the lhs dilation form no products, as in XLA): a NaN
exactly where the reference has one, the same infinity where it has one
(or where its value overflows the output dtype), finite values elsewhere.
A backend may also multiply the zeros of padding and holes by the kernel,
as frameworks that pad with real zeros do, so an element over whose window
an infinite or NaN kernel tap meets padding or a hole may be NaN
(:func:`.reference.zero_product_nans`).  Anything else is a failure: a NaN
where the reference is finite or infinite, an infinity of the wrong sign,
a finite value where the reference is not.

The other operations are judged the same way: :func:`check_close_to` takes
the reference's exact result and its magnitude (the same operation on the
absolute values of the operands) with a relative bound from
:func:`tolerance_for`, where ``K`` is the number of products summed into one
element (``C * prod(window)`` for ``conv_transpose`` and the local
convolution, ``O / groups * prod(window)`` for the lhs cotangent, the batch
times the output positions for the kernel's cotangent).
:func:`check_transpose_close`, :func:`check_patches_close`,
:func:`check_local_close` and :func:`check_vjp_close` do this per operation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyconv.spec import ConvSpec, LocalSpec, PatchesSpec, TransposeSpec, dtype_kind
from polyconv.spec.dtypes import numpy_dtype

from . import reference

__all__ = [
    "UNIT_ROUNDOFF",
    "Leeway",
    "leeway",
    "tolerance",
    "tolerance_for",
    "drift",
    "drift_for",
    "check_close",
    "check_close_to",
    "assert_close",
    "check_transpose_close",
    "check_patches_close",
    "check_local_close",
    "check_vjp_close",
]

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


@dataclass(frozen=True)
class Leeway:
    """The rounding a backend's manifest allows beyond the exact-precision bound.

    ``rounded_inputs``: float32 and complex64 operands may be rounded before
    multiplying, as far as the call's precision allows (``u_in``).
    ``half_sums``: float16 and bfloat16 products may be summed in their own
    type (``u_acc``).  :func:`polyconv.conformance.checks.leeway` derives it
    from the manifest and the device; the functions of this module also take
    a bool, True meaning both (a ``reduced_precision`` backend off the CPU).
    """

    rounded_inputs: bool = False
    half_sums: bool = False


#: What the ``reduced_precision`` parameters of this module take.
Reduced = bool | Leeway


def leeway(reduced_precision: Reduced) -> Leeway:
    """``reduced_precision`` as a :class:`Leeway` (a bool means both or neither)."""
    if isinstance(reduced_precision, Leeway):
        return reduced_precision
    return Leeway(True, True) if reduced_precision else Leeway()


def _real(name: str) -> str:
    return {"complex64": "float32", "complex128": "float64"}.get(name, name)


def tolerance(spec: ConvSpec, reduced_precision: Reduced = False) -> float:
    """Relative bound (times the magnitude) for ``spec``'s floating result."""
    return tolerance_for(_products(spec), spec.dtype, spec.out_dtype, spec.precision, reduced_precision)


def _products(spec: ConvSpec) -> int:
    """How many products each output element of ``spec``'s convolution sums."""
    return spec.in_features // spec.feature_group_count * math.prod(spec.window)


def tolerance_for(
    products: int,
    dtype: str,
    out_dtype: str,
    precision: tuple[str, str] | None = None,
    reduced_precision: Reduced = False,
) -> float:
    """Relative bound (times the magnitude) for a floating result each of whose
    elements sums ``products`` products of ``dtype`` operands into ``out_dtype``,
    at a parsed ``precision`` (None or a pair of names).  The module docstring
    gives the formula."""
    dt, out = _real(dtype), _real(out_dtype)
    u_in = 0.0
    if leeway(reduced_precision).rounded_inputs and dt == "float32":
        level = "default" if precision is None else min(
            precision, key=("default", "high", "highest").index
        )
        u_in = _REDUCED_INPUT[level]
    u_acc = _accumulation_roundoff(dtype, out_dtype, reduced_precision)
    return 2 * u_in + 4 * math.sqrt(max(products, 1)) * u_acc + UNIT_ROUNDOFF[out]


def drift_for(products: int, dtype: str, out_dtype: str, reduced_precision: Reduced = False) -> float:
    """The bound (times the result's own magnitude ``|y|``) that a plain running
    sum may add: ``(K - 1) * u_acc``.  Each addition rounds the running total,
    and when the products share a sign the total grows to ``|y|`` and every
    rounding goes the same way; with products of mixed signs ``|y|`` is
    smaller and this term with it (see the module docstring)."""
    return max(products - 1, 0) * _accumulation_roundoff(dtype, out_dtype, reduced_precision)


def _accumulation_roundoff(dtype: str, out_dtype: str, reduced_precision: Reduced) -> float:
    dt, out = _real(dtype), _real(out_dtype)
    if dtype_kind(dtype) in "iub":
        return UNIT_ROUNDOFF["float32"] if out in ("float16", "bfloat16", "float32") else UNIT_ROUNDOFF["float64"]
    if dt == "float64" or out == "float64":
        return UNIT_ROUNDOFF["float64"]
    if leeway(reduced_precision).half_sums and dt in ("float16", "bfloat16"):
        return UNIT_ROUNDOFF[dt]
    return UNIT_ROUNDOFF["float32"]


def drift(spec: ConvSpec, reduced_precision: Reduced = False) -> float:
    """:func:`drift_for` of ``spec``'s convolution."""
    return drift_for(_products(spec), spec.dtype, spec.out_dtype, reduced_precision)


def _abs(a: np.ndarray) -> np.ndarray:
    """``|a|`` for the magnitude, without wrapping: ``abs`` of int8's -128 is -128
    in int8, so integers are made float64 first (exact up to 2**53)."""
    return np.abs(a.astype(np.float64)) if a.dtype.kind in "iu" else np.abs(a)


def check_close(actual: Any, lhs: Any, rhs: Any, spec: ConvSpec, reduced_precision: Reduced = False) -> str | None:
    """None if ``actual`` matches the reference for ``spec``, else a description
    of the worst mismatch.  ``actual``, ``lhs`` and ``rhs`` are NumPy arrays."""
    actual = np.asarray(actual)
    if actual.shape != spec.out_shape:
        return f"shape {actual.shape}, expected {spec.out_shape}"
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    exact = reference.conv_from_spec(lhs, rhs, spec)
    if dtype_kind(spec.out_dtype) in "iub":  # exact
        return check_close_to(actual, exact, None, 0.0, spec.out_dtype)
    magnitude = reference.conv_from_spec(_abs(lhs), _abs(rhs), spec).real
    nans = None if np.isfinite(rhs).all() else reference.zero_product_nans(rhs, spec)
    return check_close_to(actual, exact, magnitude, tolerance(spec, reduced_precision), spec.out_dtype, nans,
                          drift(spec, reduced_precision))


def check_close_to(
    actual: Any, expected: np.ndarray, magnitude: np.ndarray | None, rel_tol: float, out_dtype: str,
    nan_allowed: np.ndarray | None = None, drift: float = 0.0,
) -> str | None:
    """None if ``actual`` matches a reference result, else a description of the worst mismatch.

    ``expected`` is the reference's exact result (in its accumulation dtype)
    and ``magnitude`` the same operation applied to the absolute values of
    the operands (real, float64; unused, and may be None, for integer and
    boolean results, which must equal ``expected`` cast to ``out_dtype``
    exactly).  A floating element passes when:

    * the reference is NaN, and it is NaN;
    * the reference is infinite (or its value rounds to infinity in
      ``out_dtype``), and it is the same infinity;
    * the reference is finite, and it is finite with an error of at most
      ``rel_tol * magnitude + drift * |expected| + tiny`` (or infinite of the right sign, where
      the reference plus that bound overflows ``out_dtype``);
    * ``nan_allowed`` is true there (:func:`.reference.zero_product_nans`:
      a non-finite kernel tap over padding or a hole) and it is NaN.

    Complex elements follow the same rule, except that a non-finite
    reference only requires a non-finite element (frameworks differ in the
    components of ``inf * (a + bj)``).  ``rel_tol`` usually comes from
    :func:`tolerance_for`.
    """
    actual = np.asarray(actual)
    exact = np.asarray(expected)
    if actual.shape != exact.shape:
        return f"shape {actual.shape}, expected {exact.shape}"
    if dtype_kind(out_dtype) in "iub":
        expected = reference.cast_result(exact, out_dtype)
        bad = actual != expected
        if not bad.any():
            return None
        i = tuple(int(v) for v in np.argwhere(bad)[0])
        wrapped = "" if int(exact[i]) == int(expected[i]) else (
            f" ({int(exact[i])} true products)" if out_dtype == "bool" else
            f" (the exact sum {int(exact[i])} wrapped to {out_dtype})")
        return (f"{int(bad.sum())} of {bad.size} elements differ; at {i}: got {actual[i]!r}, "
                f"expected {expected[i]!r}{wrapped}")
    assert magnitude is not None, "a floating result needs its magnitude"
    complex_ = np.iscomplexobj(actual) or np.iscomplexobj(exact)
    got = actual.astype(np.complex128 if complex_ else np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        bound = rel_tol * np.asarray(magnitude) + drift * np.abs(exact) + _TINY[_real(out_dtype)]
        err = np.abs(got - exact)
        finite_ref, finite_got = np.isfinite(exact), np.isfinite(got)
        ok = finite_ref & finite_got & (err <= bound)
        if complex_:
            ok |= ~finite_ref & ~finite_got
        else:
            rounded = exact.astype(numpy_dtype(_real(out_dtype)), copy=False).astype(np.float64)
            top = (np.abs(exact) + bound).astype(numpy_dtype(_real(out_dtype)), copy=False)
            ok |= np.isnan(exact) & np.isnan(got)
            ok |= np.isinf(rounded) & (got == rounded)  # an infinite reference, or one that overflows
            ok |= finite_ref & np.isinf(got) & np.isinf(top) & (np.sign(got) == np.sign(exact))
        if nan_allowed is not None:
            ok |= nan_allowed & np.isnan(got)
    bad = ~ok
    if not bad.any():
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(finite_ref & finite_got, err / bound, np.inf)
    i = tuple(int(v) for v in np.unravel_index(np.argmax(np.where(bad, score, -1.0)), err.shape))
    allowed = f"allowed {bound[i]:.3g}" + (" or NaN" if nan_allowed is not None and nan_allowed[i] else "")
    if finite_ref[i] and finite_got[i]:
        why = f"error {err[i]:.3g}, {allowed}"
    else:  # judged by the non-finite rule, not by a bound
        kind = "NaN" if np.isnan(exact[i]) else "infinite" if np.isinf(exact[i]) else "finite"
        why = f"the non-finite rule: the reference is {kind} here" + (
            ", and NaN is allowed" if nan_allowed is not None and nan_allowed[i] else "")
    return (
        f"{int(bad.sum())} of {bad.size} elements out of tolerance; worst at {i}: got {got[i]!r}, "
        f"expected {exact[i]!r} ({why})"
    )


def assert_close(actual: Any, lhs: Any, rhs: Any, spec: ConvSpec, reduced_precision: Reduced = False) -> None:
    """Raise ``AssertionError`` with the worst mismatch unless ``actual`` matches."""
    problem = check_close(actual, lhs, rhs, spec, reduced_precision)
    if problem is not None:
        raise AssertionError(problem)


def _floating(dtype: str) -> bool:
    return dtype_kind(dtype) not in "iub"


def check_transpose_close(
    actual: Any, lhs: Any, rhs: Any, tspec: TransposeSpec, reduced_precision: Reduced = False
) -> str | None:
    """:func:`check_close` for ``conv_transpose``: None if ``actual`` matches the reference."""
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    exact = reference.transpose_from_spec(lhs, rhs, tspec)
    conv = tspec.conv
    if not _floating(conv.out_dtype):  # exact
        return check_close_to(actual, exact, None, 0.0, conv.out_dtype)
    magnitude = reference.transpose_from_spec(_abs(lhs), _abs(rhs), tspec).real
    nans = None if np.isfinite(rhs).all() else reference.transpose_zero_product_nans(rhs, tspec)
    return check_close_to(actual, exact, magnitude, tolerance(conv, reduced_precision), conv.out_dtype, nans,
                          drift(conv, reduced_precision))


def check_patches_close(actual: Any, lhs: Any, pspec: PatchesSpec, reduced_precision: Reduced = False) -> str | None:
    """:func:`check_close` for ``conv_general_dilated_patches``.  Copies are exact; the
    convolution's bound stays the allowance on finite values (a backend may compute the
    patches as ``jax.lax`` does, an identity-kernel convolution, in reduced precision),
    but the non-finite rule leaves it no NaN where the reference copies a value."""
    lhs = np.asarray(lhs)
    exact = reference.patches_from_spec(lhs, pspec)
    conv = pspec.conv
    if not _floating(conv.out_dtype):  # exact
        return check_close_to(actual, exact, None, 0.0, conv.out_dtype)
    magnitude = reference.patches_from_spec(_abs(lhs), pspec).real
    return check_close_to(actual, exact, magnitude, tolerance(conv, reduced_precision), conv.out_dtype,
                          drift=drift(conv, reduced_precision))


def check_local_close(
    actual: Any, lhs: Any, rhs: Any, lspec: LocalSpec, reduced_precision: Reduced = False
) -> str | None:
    """:func:`check_close` for ``conv_general_dilated_local``: ``C * prod(filter_shape)``
    products per element."""
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    exact = reference.local_from_spec(lhs, rhs, lspec)
    conv = lspec.patches.conv
    if not _floating(conv.dtype):  # exact
        return check_close_to(actual, exact, None, 0.0, conv.dtype)
    magnitude = reference.local_from_spec(_abs(lhs), _abs(rhs), lspec).real
    products = conv.in_features * math.prod(lspec.patches.filter_shape)
    rel_tol = tolerance_for(products, conv.dtype, conv.dtype, lspec.precision, reduced_precision)
    running = drift_for(products, conv.dtype, conv.dtype, reduced_precision)
    nans = None if np.isfinite(rhs).all() else reference.local_zero_product_nans(rhs, lspec)
    return check_close_to(actual, exact, magnitude, rel_tol, conv.dtype, nans, running)


def check_vjp_close(
    lhs_ct: Any, rhs_ct: Any, lhs: Any, rhs: Any, cotangent: Any, spec: ConvSpec, reduced_precision: Reduced = False,
    out_dtype: str | None = None,
) -> str | None:
    """:func:`check_close` for the two cotangents of ``conv_general_dilated``.

    ``cotangent`` is in the forward output's layout; ``lhs_ct`` and ``rhs_ct``
    are judged in ``out_dtype`` (default: the operands' dtype, as autodiff
    returns them).  The lhs cotangent sums ``O / groups * prod(window)``
    products per element, the kernel's the (per group) batch times the output
    positions.
    """
    lhs, rhs, cotangent = np.asarray(lhs), np.asarray(rhs), np.asarray(cotangent)
    out_dtype = out_dtype or spec.dtype
    exact = reference.vjp_from_spec(lhs, rhs, cotangent, spec)
    magnitude: tuple[Any, Any] = (None, None)
    rel_tol: tuple[float, ...] = (0.0, 0.0)  # integers: exact
    drifts: tuple[float, ...] = (0.0, 0.0)
    if _floating(out_dtype):
        mag = reference.vjp_from_spec(_abs(lhs), _abs(rhs), _abs(cotangent), spec)
        magnitude = (mag[0].real, mag[1].real)
        groups = spec.groups
        products = (
            spec.out_features // groups * math.prod(spec.window),
            spec.batch // spec.batch_group_count * math.prod(spec.out_spatial),
        )
        rel_tol = tuple(
            tolerance_for(k, spec.out_dtype, out_dtype, spec.precision, reduced_precision) for k in products
        )
        drifts = tuple(drift_for(k, spec.out_dtype, out_dtype, reduced_precision) for k in products)
    for name, got, want, mag, tol, run in zip(("lhs", "rhs"), (lhs_ct, rhs_ct), exact, magnitude, rel_tol, drifts):
        problem = check_close_to(got, want, mag, tol, out_dtype, drift=run)
        if problem is not None:
            return f"{name} cotangent: {problem}"
    return None

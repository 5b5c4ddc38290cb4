"""Accumulation policy of the matrix-product backends.

=================  ==============================  =======================
operands           accumulate in                   result
=================  ==============================  =======================
float16, bfloat16  float32                         rounded once
float32, float64   themselves (BLAS)
complex            themselves (BLAS)
bool, 8/16-bit     float64 (BLAS), exact while a   wraps as the int type;
integers           window sums < 2**53             bool: any product
wider integers     int64, exact modulo 2**64       wraps as the int type
=================  ==============================  =======================

``preferred_element_type`` widens the accumulation when it is wider; an
integer input with a floating ``preferred_element_type`` accumulates in
float64.  bool operands with a numeric ``preferred_element_type`` count the
true products, as XLA does.

Devices that lack some dtypes (``available``, from the namespace's
``__array_namespace_info__().dtypes(device=...)``) get the nearest exact
plan: integers accumulate in int64, or in int32 where the device has no
64-bit types (integer arithmetic wraps modulo ``2**width``, and every
result is reduced modulo its own, no wider, width, so it stays exact); an
integer input with a floating result and no float64 accumulates in the
result's dtype.

A :class:`GemmDtypes` carries canonical dtype names; the convolution turns
them into the namespace's dtype objects.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from polyconv.spec import ConvSpec, dtype_bits, dtype_kind

__all__ = ["GemmDtypes", "plan_dtypes"]


@dataclass(frozen=True)
class GemmDtypes:
    """The dtypes of the matrix products of one convolution, as canonical names.

    Attributes
    ----------
    compute
        Operands are cast to this dtype and multiplied in it.
    out
        The result's dtype (``spec.out_dtype``).
    exact_int
        The result is an integer or bool recovered exactly from ``compute``
        (through int64 when ``compute`` is float64).
    """

    compute: str
    out: str
    exact_int: bool




def plan_dtypes(spec: ConvSpec, contraction: int, available: Collection[str] | None = None) -> GemmDtypes:
    """The accumulation and result dtypes of ``spec``.

    Parameters
    ----------
    spec
        The validated convolution.
    contraction
        The length of one dot product (taps times channels per group).
    available
        Canonical names of the dtypes the operands' device offers, or None
        for all of them.

    Returns
    -------
    GemmDtypes
        The accumulation dtype, the result dtype, and whether the result is
        an exactly recovered integer.

    Examples
    --------
    >>> from polyconv.spec import conv_spec
    >>> spec = conv_spec((1, 1, 8), (1, 1, 3), 'int8', 'int8', (1,), 'VALID')
    >>> plan_dtypes(spec, 3)
    GemmDtypes(compute='float64', out='int8', exact_int=True)
    >>> plan_dtypes(spec, 3, available={'int8', 'int16', 'int32', 'float32'})
    GemmDtypes(compute='int32', out='int8', exact_int=True)
    """

    def has(name: str) -> bool:
        return available is None or name in available

    out = spec.out_dtype
    kin = dtype_kind(spec.dtype)
    kout = dtype_kind(out)
    if kin in "iub" and kout in "iub":
        bits = dtype_bits(spec.dtype)
        # each product is below 2**(2*bits); float64 adds them exactly below 2**53.
        if bits <= 16 and contraction < 2 ** (53 - 2 * bits) and has("float64") and has("int64"):
            return GemmDtypes("float64", out, True)
        # wrapping integer arithmetic is exact modulo the output's width when it is no narrower
        return GemmDtypes("int64" if has("int64") else "int32", out, True)
    if kin in "iub" and kout == "f":  # integer or bool operands, floating result
        return GemmDtypes("float64" if has("float64") else out, out, False)
    widest = max((spec.dtype, out), key=dtype_bits)
    compute = widest
    if kout == "f" and dtype_bits(widest) < 32:
        compute = "float32"
    return GemmDtypes(compute, out, False)

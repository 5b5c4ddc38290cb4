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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyconv.spec import ConvSpec, dtype_bits, dtype_kind

__all__ = ["Plan", "plan_dtypes", "numpy_dtype"]


@dataclass(frozen=True)
class Plan:
    """How to compute: operands are cast to ``compute``; an integer result
    is recovered from ``compute`` through int64 (``exact_int``)."""

    compute: np.dtype
    out: np.dtype
    exact_int: bool


def numpy_dtype(name: str) -> np.dtype:
    """NumPy dtype of a canonical name (bfloat16 through ml_dtypes)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def plan_dtypes(spec: ConvSpec, contraction: int) -> Plan:
    """The plan for ``spec``; ``contraction`` is the length of one dot product."""
    out = numpy_dtype(spec.out_dtype)
    kin = dtype_kind(spec.dtype)
    kout = dtype_kind(spec.out_dtype)
    if kin in "iub" and kout in "iub":
        bits = dtype_bits(spec.dtype)
        # each product is below 2**(2*bits); float64 adds them exactly below 2**53.
        if bits <= 16 and contraction < 2 ** (53 - 2 * bits):
            return Plan(np.dtype(np.float64), out, True)
        return Plan(np.dtype(np.int64), out, True)
    if kin in "iub" and kout == "f":  # integer or bool operands, floating result
        return Plan(np.dtype(np.float64), out, False)
    widest = max((spec.dtype, spec.out_dtype), key=dtype_bits)
    compute = numpy_dtype(widest)
    if kout == "f" and dtype_bits(widest) < 32:
        compute = np.dtype(np.float32)
    return Plan(compute, out, False)

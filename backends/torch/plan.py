"""Which dtype the torch backend computes in, and how it recovers the result.

=====================  ===========================  ============================
operands -> result     computed as                  result
=====================  ===========================  ============================
float, complex         the wider of the operand     cast once to the result
                       and result dtypes; float16
                       and bfloat16 in float32 on
                       the CPU (PyTorch's CPU
                       kernels may accumulate half
                       precision in half)
integer -> integer     int64 on the CPU (PyTorch's  wraps as the result type
                       integer convolution, exact
                       modulo 2**64); elsewhere
                       float64 when every window
                       sum is below 2**53, else
                       16-bit limbs (``exact``)
integer -> float       float64                      cast once to the result
bool -> bool           counts in float32 (float64   any product: count != 0
                       past 2**24 products)
bool -> number         the same counts              the count, as XLA does
=====================  ===========================  ============================
"""

from __future__ import annotations

from dataclasses import dataclass

from polyconv.spec import ConvSpec, dtype_bits, dtype_kind

__all__ = ["TorchDtypes", "plan_dtypes"]


@dataclass(frozen=True)
class TorchDtypes:
    """The dtypes of one convolution on one device type, and how its result is recovered.

    ``compute``: dtype name the convolution runs in; ``out``: the result's;
    ``mode``: ``'float'`` (cast the result), ``'int'`` (exact integer
    arithmetic), ``'count'`` (bool operands: products counted in ``compute``).
    """

    compute: str
    out: str
    mode: str


def plan_dtypes(spec: ConvSpec, contraction: int, device_type: str) -> TorchDtypes:
    """The dtypes for ``spec`` on a device of type ``device_type``; ``contraction``
    is the length of one dot product (channels per group times window taps)."""
    kin, kout = dtype_kind(spec.dtype), dtype_kind(spec.out_dtype)
    out = spec.out_dtype
    if kin == "b":
        return TorchDtypes("float32" if contraction < 2**24 else "float64", out, "count")
    if kin in "iu" and kout in "iu":
        return TorchDtypes("int64", out, "int")
    if kin in "iu":
        return TorchDtypes("float64", out, "float")
    widest = max((spec.dtype, out), key=dtype_bits)
    if dtype_bits(widest) == 16 and device_type == "cpu":
        widest = "float32"
    return TorchDtypes(widest, out, "float")

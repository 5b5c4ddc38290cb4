"""Which dtype the MLX backend computes in, and how it recovers the result.

MLX's convolution (``mlx.core.conv_general``) takes floating operands only,
and on the CPU computes float64 in float32 (a float64 convolution gives the
float32 one's values, bit for bit), so only float16, bfloat16 and float32
go to it; everything else is summed tap by tap in matrix products
(:mod:`.lower`), which MLX computes in the operands' own dtype, float64
included (on the CPU: Metal has no float64).

=====================  ==============================  ===========================
operands -> result     computed as                     result
=====================  ==============================  ===========================
float16, bfloat16,     ``conv_general`` in the         as it is, or cast once to
float32 -> 16/32-bit   operands' dtype when the        the result's dtype
float                  result has it (MLX sums half
                       in float32 on the CPU), else
                       in float32
anything -> float64    float64 matrix products         cast once to the result
(and integers ->       (integers converted to
float)                 float64, as the reference)
complex64              two real ``conv_general``       complex64
                       calls (real and imaginary
                       parts stacked in the batch)
integer -> integer     float64 matrix products of      int64 sums (wrapping),
                       16-bit limbs, exact, turned     cast to the result (wraps
                       into int64 per product          as XLA does)
bool -> any            counts of true products         count != 0 for bool; else
                       (exact, as integers)            the count, as XLA does
=====================  ==============================  ===========================
"""

from __future__ import annotations

from dataclasses import dataclass

from polyconv.spec import ConvSpec, dtype_kind

__all__ = ["MlxDtypes", "plan_dtypes", "NATIVE_DTYPES"]

#: The operand dtypes ``mlx.core.conv_general`` computes as asked.
NATIVE_DTYPES = frozenset({"float16", "bfloat16", "float32"})


@dataclass(frozen=True)
class MlxDtypes:
    """The dtypes of one convolution.

    ``mode``: ``'float'`` (16- and 32-bit floats, ``conv_general``),
    ``'wide'`` (float64 matrix products), ``'complex'`` (complex64), ``'exact'``
    (integers and bool: exact integer sums).  ``compute``: the dtype the
    operands are cast to before they are multiplied (``'int64'`` for
    ``'exact'``, whose products run on limbs).  ``out``: the result's dtype.
    """

    mode: str
    compute: str
    out: str


def plan_dtypes(spec: ConvSpec) -> MlxDtypes:
    """The dtypes of ``spec`` (see the module docstring).

    >>> from polyconv.spec import conv_spec
    >>> plan_dtypes(conv_spec((1, 1, 8), (1, 1, 3), 'float16', 'float16', (1,), 'VALID'))
    MlxDtypes(mode='float', compute='float16', out='float16')
    >>> plan_dtypes(conv_spec((1, 1, 8), (1, 1, 3), 'int8', 'int8', (1,), 'VALID', preferred_element_type='float32'))
    MlxDtypes(mode='wide', compute='float64', out='float32')
    """
    out = spec.out_dtype
    kin, kout = dtype_kind(spec.dtype), dtype_kind(out)
    if kin == "b" or (kin in "iu" and kout in "iu"):
        return MlxDtypes("exact", "int64", out)
    if kin == "c":
        return MlxDtypes("complex", "complex64", out)
    if out == "float64" or kin in "iu" or spec.dtype == "float64":
        return MlxDtypes("wide", "float64", out)
    return MlxDtypes("float", spec.dtype if out == spec.dtype else "float32", out)

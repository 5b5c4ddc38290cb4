"""Index tables: which input element each (output position, kernel tap) reads.

For one spatial axis with input size ``S``, padding ``(lo, hi)``, stride
``s``, lhs dilation ``ld`` and rhs dilation ``rd``, output position ``y`` and
tap ``k`` read position ``p = y*s + k*rd - lo`` of the dilated, padded axis.
That is input element ``p // ld`` when ``p`` is a multiple of ``ld`` inside
the dilated axis, and a zero otherwise.  Zeros are read from one extra slot
at index ``S``, so padding, cropping and lhs dilation need no zero-filled
copy of the input.

The table is filled tap by tap from :func:`polyconv.spec.canonical.axis_reads` (each tap's
reads are one strided run), in exact integer arithmetic: strides, dilations
and paddings far past int64 give the right table, of ``Y * K`` entries.
"""

from __future__ import annotations

import numpy as np

from polyconv.spec.canonical import axis_reads

__all__ = ["axis_table"]


def axis_table(
    size: int, out: int, window: int, stride: int, lhs_dilation: int, rhs_dilation: int, low: int
) -> np.ndarray:
    """Table ``T[y, k]`` of input indices (``size`` meaning "a zero") for one axis."""
    table = np.full((out, window), size, dtype=np.int64)
    for r in axis_reads(size, out, window, stride, lhs_dilation, rhs_dilation, low):
        table[r.out_start : r.out_stop : r.out_step, r.tap] = np.arange(r.in_start, r.in_stop, r.in_step)
    return table

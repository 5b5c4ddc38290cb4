"""Index tables: which input element each (output position, kernel tap) reads.

For one spatial axis with input size ``S``, padding ``(lo, hi)``, stride
``s``, lhs dilation ``ld`` and rhs dilation ``rd``, output position ``y`` and
tap ``k`` read position ``p = y*s + k*rd - lo`` of the dilated, padded axis.
That is input element ``p // ld`` when ``p`` is a multiple of ``ld`` inside
the dilated axis, and a zero otherwise.  Zeros are read from one extra slot
at index ``S``, so padding, cropping and lhs dilation need no zero-filled
copy of the input.
"""

from __future__ import annotations

import numpy as np

__all__ = ["axis_table"]


def axis_table(
    size: int, out: int, window: int, stride: int, lhs_dilation: int, rhs_dilation: int, low: int
) -> np.ndarray:
    """Table ``T[y, k]`` of input indices (``size`` meaning "a zero") for one axis."""
    p = (np.arange(out, dtype=np.int64) * stride)[:, None] + (
        np.arange(window, dtype=np.int64) * rhs_dilation - low
    )[None, :]
    if lhs_dilation == 1:
        return np.where((p >= 0) & (p < size), p, size)
    q, r = np.divmod(p, lhs_dilation)
    valid = (p >= 0) & (r == 0) & (q < size)
    return np.where(valid, q, size)

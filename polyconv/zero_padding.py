"""Zeros added to the ends of array axes, in any array-API namespace.

One helper for every place that pads by concatenation (the layers' periodic
folding, the cuDNN operands' explicit padding, the FFT path's box sums):
``xp.concat`` with fresh zero blocks, which every namespace has (the array
API has no ``pad``).  The input is never written to; an axis with nothing
to add is left as it is (no copy).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .devices import on

__all__ = ["pad_axis", "pad_spatial"]


def pad_axis(xp: Any, x: Any, axis: int, before: int, after: int, device: Any = None) -> Any:
    """``x`` with ``before`` zeros ahead of it and ``after`` zeros behind it
    along ``axis`` (both non-negative), on ``device`` (``None``: the
    framework's default placement, for frameworks without devices).

    >>> import numpy as np
    >>> pad_axis(np, np.array([[1, 2]]), 1, 1, 2).tolist()
    [[0, 1, 2, 0, 0]]
    """
    parts = []
    for count in (before, None, after):
        if count is None:
            parts.append(x)
        elif count > 0:
            shape = (*x.shape[:axis], count, *x.shape[axis + 1:])
            parts.append(xp.zeros(shape, dtype=x.dtype, **on(device)))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=axis)


def pad_spatial(xp: Any, x: Any, pads: Sequence[tuple[int, int]], device: Any = None) -> Any:
    """``x``, channels-last ``(N, *spatial, C)``, with ``pads[i] = (low, high)``
    zeros added to spatial axis ``i`` (non-negative).

    >>> import numpy as np
    >>> pad_spatial(np, np.ones((1, 2, 1)), [(1, 0)])[0, :, 0].tolist()
    [0.0, 1.0, 1.0]
    """
    for axis, (low, high) in enumerate(pads, start=1):
        x = pad_axis(xp, x, axis, low, high, device)
    return x

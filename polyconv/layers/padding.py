"""The layers' padding: Flax's padding forms, and the padding modes that
``jax.lax`` does not have, on arrays of any framework.

* :func:`canonicalize_padding`: ``flax.linen.linear.canonicalize_padding``
  (an int, ints or pairs become ``n`` pairs; strings pass through), parsed
  by :func:`polyconv.spec.padding.explicit_pairs`, the ops' own parser.
* :func:`periodic_indices` and :func:`pad_periodic`: ``'CIRCULAR'`` (NumPy's
  ``'wrap'``) and ``'REFLECT'`` (NumPy's ``'reflect'``, the edge not
  repeated) padding of the spatial axes, as one gather (``take``) per axis
  through the array's own namespace, so it runs on the array's framework and
  device and is differentiated and traced like any other operation.
* :func:`fold_periodic`: the ``'CIRCULAR'`` ConvTranspose's wrap of its
  output onto one period, as Flax does it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat

from ..devices import device_of, on
from ..spec.padding import explicit_pairs
from ..zero_padding import pad_spatial

__all__ = ["canonicalize_padding", "periodic_indices", "pad_periodic", "pad_zeros", "fold_pads", "fold_periodic"]

Pairs = tuple[tuple[int, int], ...]


def canonicalize_padding(padding: Any, rank: int, op: str = "canonicalize_padding") -> str | Pairs:
    """A padding string as it is, or ``rank`` ``(low, high)`` pairs.

    As Flax: a single int pads every side of every spatial axis by it; a
    sequence of ``rank`` entries holds, per axis, an int (both sides) or a
    pair.  Unlike Flax, a pair may be any two-element sequence (a list too,
    as JSON gives it), not only a tuple.

    Examples
    --------
    >>> canonicalize_padding(1, 2)
    ((1, 1), (1, 1))
    >>> canonicalize_padding([2, (0, 1)], 2)
    ((2, 2), (0, 1))
    >>> canonicalize_padding('SAME', 3)
    'SAME'
    """
    if isinstance(padding, str):
        return padding
    expected = (
        f"must be a string, an int, or a sequence of {rank} entries, each an int or a (low, high) pair of ints"
    )
    return explicit_pairs(padding, rank, op, expected, ints=True)


def periodic_indices(size: int, low: int, high: int, mode: str) -> list[int]:
    """Source index of each element of an axis of ``size`` padded by
    ``(low, high)`` in ``mode`` ``'wrap'`` or ``'reflect'``, as ``numpy.pad``
    (pads longer than the axis repeat the pattern).

    Examples
    --------
    >>> periodic_indices(3, 2, 2, 'wrap')
    [1, 2, 0, 1, 2, 0, 1]
    >>> periodic_indices(3, 3, 3, 'reflect')
    [1, 2, 1, 0, 1, 2, 1, 0, 1]
    """
    positions = range(-low, size + high)
    if mode == "wrap":
        return [j % size for j in positions]
    period = 2 * (size - 1)
    if period == 0:
        return [0] * len(positions)
    out = []
    for j in positions:
        m = j % period
        out.append(m if m < size else period - m)
    return out


def pad_periodic(x: Any, pads: Sequence[tuple[int, int]], mode: str) -> Any:
    """``x`` (``(N, *spatial, C)``) with its spatial axes padded by ``pads`` in
    ``mode`` (``'wrap'`` or ``'reflect'``), in ``x``'s own framework.

    Examples
    --------
    >>> import numpy as np
    >>> pad_periodic(np.arange(3.0).reshape(1, 3, 1), [(1, 2)], 'wrap')[0, :, 0]
    array([2., 0., 1., 2., 0., 1.])
    """
    xp = array_api_compat.array_namespace(x)
    device = device_of(x)
    for axis, (low, high) in enumerate(pads, start=1):
        if low == high == 0:
            continue
        index = xp.asarray(periodic_indices(x.shape[axis], low, high, mode), **on(device))
        x = xp.take(x, index, axis=axis)
    return x


def pad_zeros(x: Any, pads: Sequence[tuple[int, int]]) -> Any:
    """``x`` (``(N, *spatial, C)``) with zeros added to its spatial axes
    (non-negative ``pads``), in ``x``'s own framework."""
    return pad_spatial(array_api_compat.array_namespace(x), x, pads, device_of(x))


def fold_pads(out_spatial: Sequence[int], periods: Sequence[int], transpose_kernel: bool) -> list[tuple[int, int]]:
    """The zero padding that brings each spatial axis of a transposed
    convolution's output to an odd number of ``periods``, centred as Flax
    centres it (the odd element on the left, or on the right with
    ``transpose_kernel``, which mirrors a forward convolution).

    Examples
    --------
    >>> fold_pads((9,), (4,), False), fold_pads((9,), (4,), True)   # 9 + 3 = 12 = 3 periods
    ([(2, 1)], [(1, 2)])
    """
    pads = []
    for size, period in zip(out_spatial, periods):
        diff = -(size - period) % (2 * period)
        pads.append((diff // 2, (diff + 1) // 2) if transpose_kernel else ((diff + 1) // 2, diff // 2))
    return pads


def fold_periodic(y: Any, periods: Sequence[int], transpose_kernel: bool) -> Any:
    """Wrap ``y`` (``(N, *spatial, C)``) periodically onto ``periods`` along
    its spatial axes, summing what overlaps: Flax's ``'CIRCULAR'``
    ConvTranspose.

    Examples
    --------
    >>> import numpy as np
    >>> fold_periodic(np.arange(5.0).reshape(1, 5, 1), (2,), False)[0, :, 0]
    array([4., 6.])
    """
    xp = array_api_compat.array_namespace(y)
    y = pad_zeros(y, fold_pads(y.shape[1:-1], periods, transpose_kernel))
    for axis, period in enumerate(periods, start=1):
        shape = y.shape[:axis] + (y.shape[axis] // period, period) + y.shape[axis + 1:]
        y = xp.sum(xp.reshape(y, shape), axis=axis)
    return y

"""Block planning: which input elements each output block needs, with no arrays.

The dask backend cuts a convolution into block convolutions.  Along each
spatial axis the plan starts from the output side: the output is cut where
the input is (scaled by the stride and the lhs dilation), and each
output block ``[o0, o1)`` needs the input elements whose positions in the
padded, dilated input fall inside its windows.  A block convolution then
gets exactly those elements with a *local* padding: the part of its windows
that lies outside them.  Its result is the output block, element for
element, for any stride, both dilations and any global padding (negative
too): the block's windows are the global windows, shifted.

Along the feature axis, an input chunk boundary inside a feature group cuts
the group's contraction in two; :func:`feature_segments` splits the features
into runs of whole groups (one block convolution each, with their own
output features) and pieces of groups (partial sums, added up).

Everything here is integer arithmetic on sizes, so it is tested on its own.

Examples
--------
>>> axis = plan_axis(size=10, chunks=(4, 6), window=3, stride=2, padding=(1, 1))
>>> [(b.out_start, b.out_stop, b.in_start, b.in_stop, b.padding) for b in axis]
[(0, 2, 0, 4, (1, 0)), (2, 5, 3, 10, (0, 0))]
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AxisBlock", "Segment", "plan_axis", "feature_segments", "chunk_bounds", "pieces"]


@dataclass(frozen=True)
class AxisBlock:
    """One output block along one spatial axis.

    Attributes
    ----------
    out_start, out_stop
        The output positions ``[out_start, out_stop)`` of the block.
    in_start, in_stop
        The input elements ``[in_start, in_stop)`` its windows touch (empty
        when the windows fall wholly in padding or between dilated elements).
    padding
        The block convolution's ``(low, high)`` padding, both non-negative.
    """

    out_start: int
    out_stop: int
    in_start: int
    in_stop: int
    padding: tuple[int, int]


def chunk_bounds(chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Start offsets of the chunks, and the total size at the end.

    >>> chunk_bounds((3, 0, 4))
    (0, 3, 3, 7)
    """
    out = [0]
    for c in chunks:
        out.append(out[-1] + c)
    return tuple(out)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def plan_axis(
    size: int,
    chunks: tuple[int, ...],
    window: int,
    stride: int = 1,
    padding: tuple[int, int] = (0, 0),
    lhs_dilation: int = 1,
    rhs_dilation: int = 1,
) -> tuple[AxisBlock, ...]:
    """The output blocks of one spatial axis and the input range each needs.

    ``size`` input elements in chunks ``chunks``, a window of ``window`` taps
    dilated by ``rhs_dilation``, the input dilated by ``lhs_dilation`` and
    padded by ``padding`` (the global padding, either side may be negative).
    The output is cut where the input is, in the output's own count: at the
    first position ``o`` with ``o * stride >= start * lhs_dilation`` for the
    ``start`` of each input chunk (so a stride-1 ``'SAME'`` convolution keeps
    the input's chunks); empty blocks are dropped, so the blocks cover the
    output exactly once.  An empty output gives no blocks.

    >>> [(b.out_start, b.out_stop, b.in_start, b.in_stop, b.padding)
    ...  for b in plan_axis(5, (2, 3), window=2, lhs_dilation=2, padding=(-1, 0))]
    [(0, 4, 1, 3, (1, 1)), (4, 7, 3, 5, (1, 0))]
    """
    dilated = (size - 1) * lhs_dilation + 1 if size > 0 else 0
    reach = (window - 1) * rhs_dilation + 1  # the dilated window's extent
    low, high = padding
    padded = low + dilated + high
    if window == 0 or padded < reach:
        return ()
    out_size = (padded - reach) // stride + 1
    cuts = {0, out_size}
    for start in chunk_bounds(chunks)[1:-1]:
        # the first output position at or after input element `start`, counted as the output
        # counts the (dilated) input: o * stride >= start * lhs_dilation
        cuts.add(min(out_size, max(0, _ceil_div(start * lhs_dilation, stride))))
    edges = sorted(cuts)
    blocks = []
    for o0, o1 in zip(edges, edges[1:]):
        first = o0 * stride - low  # dilated-input coordinates of the block's windows: [first, last)
        last = (o1 - 1) * stride - low + reach
        i0 = min(size, max(0, _ceil_div(first, lhs_dilation)))
        i1 = max(i0, min(size, _ceil_div(last, lhs_dilation)))
        if i1 > i0:
            pad = (i0 * lhs_dilation - first, last - ((i1 - 1) * lhs_dilation + 1))
        else:  # no input element under these windows: all padding
            pad = (last - first, 0)
        blocks.append(AxisBlock(o0, o1, i0, i1, pad))
    return tuple(blocks)


def pieces(bounds: tuple[int, ...], start: int, stop: int) -> tuple[tuple[int, int, int], ...]:
    """The chunks that ``[start, stop)`` overlaps: ``(chunk index, local start, local stop)``.

    ``bounds`` is :func:`chunk_bounds` of the chunks.  An empty range gives
    an empty piece of the chunk holding ``start`` (or the last chunk), so a
    block of empty input still has an array to convolve.

    >>> pieces((0, 3, 7), 2, 5)
    ((0, 2, 3), (1, 0, 2))
    >>> pieces((0, 3, 7), 7, 7)
    ((1, 4, 4),)
    """
    out = []
    for j, (b0, b1) in enumerate(zip(bounds, bounds[1:])):
        lo, hi = max(start, b0), min(stop, b1)
        if lo < hi:
            out.append((j, lo - b0, hi - b0))
    if not out:
        nchunks = len(bounds) - 1
        j = next((j for j in range(nchunks) if bounds[j] <= start < bounds[j + 1]), nchunks - 1)
        local = min(max(start - bounds[j], 0), bounds[j + 1] - bounds[j])
        out.append((j, local, local))
    return tuple(out)


@dataclass(frozen=True)
class Segment:
    """A run of input features inside one chunk, convolved on its own.

    Attributes
    ----------
    chunk
        The index of the input feature chunk holding the run.
    start, stop
        The run's features, local to that chunk.
    groups
        How many whole feature groups the run is (its block convolution's
        ``feature_group_count``), or 0 for a piece of one group.
    out_start, out_stop
        The output features the run contributes to; runs of whole groups
        own theirs, pieces of one group add up into the group's.
    kernel_in
        The kernel's input features ``[start, stop)`` the run uses (all of
        them for whole groups).
    """

    chunk: int
    start: int
    stop: int
    groups: int
    out_start: int
    out_stop: int
    kernel_in: tuple[int, int]


def feature_segments(chunks: tuple[int, ...], groups: int, out_features: int) -> tuple[Segment, ...]:
    """Split the input features (in ``chunks``) at chunk and group boundaries.

    ``groups`` is the ``feature_group_count``, ``out_features`` the kernel's
    output features.  Within each chunk, the whole groups it holds make one
    segment; a group cut by a chunk boundary gives one piece per chunk.

    >>> [(s.chunk, s.start, s.stop, s.groups, s.out_start, s.out_stop) for s in
    ...  feature_segments((3, 5), groups=4, out_features=8)]
    [(0, 0, 2, 1, 0, 2), (0, 2, 3, 0, 2, 4), (1, 0, 1, 0, 2, 4), (1, 1, 5, 2, 4, 8)]
    """
    total = sum(chunks)
    per_group = total // groups
    out_per_group = out_features // groups
    segments = []
    for j, (c0, c1) in enumerate(zip(chunk_bounds(chunks), chunk_bounds(chunks)[1:])):
        f = c0
        while f < c1:
            g = f // per_group
            group_start, group_stop = g * per_group, (g + 1) * per_group
            if f == group_start and group_stop <= c1:  # whole groups from here: as many as fit
                g_stop = g + (c1 - f) // per_group
                segments.append(Segment(
                    j, f - c0, g_stop * per_group - c0, g_stop - g,
                    g * out_per_group, g_stop * out_per_group, (0, per_group),
                ))
                f = g_stop * per_group
            else:  # a piece of group g
                stop = min(c1, group_stop)
                segments.append(Segment(
                    j, f - c0, stop - c0, 0, g * out_per_group, (g + 1) * out_per_group,
                    (f - group_start, stop - group_start),
                ))
                f = stop
    return tuple(segments)

"""Shifted windows: where each kernel tap reads in a padded, flattened input.

Pad the input once (zeros around it, cropping where the padding is
negative) and flatten its spatial axes: for a stride-1 convolution the
window of every output position through kernel tap ``k`` is then the
element at a fixed *offset* ``sum_i k_i * d_i * F_i`` from the position's
own flat index (``F_i`` the flat stride of axis ``i`` in the padded array),
so one tap's inputs for a run of output positions are one contiguous slice.
The output is computed on the padded grid (the extra columns, of positions
past the output's end on the inner axes, are junk that is never read back).

A stride ``s > 1`` is made a stride of 1 by splitting each axis into its
``s`` *phases*: phase ``r`` holds the padded positions ``j*s + r``.  Tap
``k`` reads phase ``(k*d) % s`` at shift ``(k*d) // s``; the taps of one
phase form an arithmetic progression, so each phase is a small stride-1
convolution, and all phases add up into the same outputs.  Every phase plane
has the same extent ``E_i = Y_i + max shift``, so one offset arithmetic
serves them all.

Work is done in *chunks* (:class:`Chunk`): a range of whole images, or a
range of output rows of the first spatial axis of one image, and a range of
groups.  A chunk's *slab* is the padded phase planes that its outputs read:
``(planes, G_c, C_g, L)``, filled from the input by :func:`fill_slab`.
Chunks keep every temporary buffer bounded, whatever the convolution.

Only what reaches the input is computed (:func:`live_part`): on each axis,
the taps that read input elements for some output are a range ``k0 .. k1``
of the kernel, and the outputs that read any through them a range
``y0 .. y1`` (the others read padding alone: zeros); the geometry is that of
this window and these outputs (``Geometry.first`` and ``Geometry.origin``
hold ``k0`` and ``y0``; :meth:`Geometry.computed` zeroes the rest of the
output: the taps left out form no product, as the definition has it).  One tap needs
no dilation, one output no stride, and two taps that both reach the input
are less than ``S + (Y - 1) * s`` apart, so a plane's extent is below
``2 * Y + S / s``: bounded by the output and the input, never by the
padding, the strides or the dilations, which may be any integers (the
offsets into the input are Python integers).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import product

import numpy as np

from polyconv.spec.canonical import Problem, axis_reach

__all__ = ["AxisPhase", "Geometry", "Chunk", "live_part", "geometry", "fill_slab", "store"]


@dataclass(frozen=True)
class AxisPhase:
    """The taps of one axis that read one phase.

    Attributes
    ----------
    r
        The phase: padded positions ``j * stride + r``.
    k0, kstep, count
        The taps ``k0, k0 + kstep, ...`` (``count`` of them).
    q0, qstep
        Their shifts in the phase plane: ``q0, q0 + qstep, ...``.
    """

    r: int
    k0: int
    kstep: int
    count: int
    q0: int
    qstep: int


def axis_phases(window: int, stride: int, dilation: int) -> tuple[AxisPhase, ...]:
    """The phases of one axis that some tap reads, ordered by first tap."""
    g = math.gcd(dilation, stride)
    kstep, qstep = stride // g, dilation // g
    return tuple(
        AxisPhase((k0 * dilation) % stride, k0, kstep, (window - k0 + kstep - 1) // kstep, (k0 * dilation) // stride,
                  qstep)
        for k0 in range(min(window, kstep))
    )


@dataclass(frozen=True)
class Chunk:
    """Images ``n0:n1``, groups ``g0:g1`` and output rows ``a:b`` of the first spatial axis.

    When a chunk holds several images it holds all their rows.
    """

    n0: int
    n1: int
    g0: int
    g1: int
    a: int
    b: int

    @property
    def images(self) -> int:
        return self.n1 - self.n0

    @property
    def groups(self) -> int:
        return self.g1 - self.g0


@dataclass(frozen=True)
class Geometry:
    """The phase planes of a :class:`~.problem.Problem` and their flat offsets.

    Attributes
    ----------
    problem
        The convolution.
    phases
        Per axis, the phases some tap reads.
    planes
        Every combination of one phase per axis (a phase plane of the input).
    extents
        ``E_i``: the extent of every phase plane on axis ``i``.
    qmax
        Per axis, the largest shift of any tap.
    flat
        ``F_i``: flat stride of axis ``i`` within a slab (``F_0`` is one row
        of the first axis).
    first, origin
        Per axis, the kernel tap that is tap 0 of ``problem``, and the output
        that is its output 0 (:func:`live_part`: the taps before never reach
        the input, nor the outputs outside ``problem.out`` from there).
    source
        The problem as given (``problem`` itself when nothing was left out).
    """

    problem: Problem
    phases: tuple[tuple[AxisPhase, ...], ...]
    planes: tuple[tuple[AxisPhase, ...], ...]
    extents: tuple[int, ...]
    qmax: tuple[int, ...]
    flat: tuple[int, ...]
    first: tuple[int, ...]
    origin: tuple[int, ...]
    source: Problem

    def computed(self, y: np.ndarray) -> np.ndarray:
        """The part of the canonical output ``y`` (``(N', G, O_g, *Y)``) that
        ``problem`` computes, a view; the rest of ``y`` is set to zero."""
        index = tuple(slice(o, o + size) for o, size in zip(self.origin, self.problem.out))
        if all(sl.start == 0 and sl.stop == size for sl, size in zip(index, y.shape[3:])):
            return y
        y[...] = 0
        part = (slice(None), slice(None), slice(None), *index)
        return y[part]

    @cached_property
    def max_offset(self) -> int:
        """The largest flat offset of any tap."""
        return sum(q * f for q, f in zip(self.qmax, self.flat))

    def offset(self, shifts: tuple[int, ...]) -> int:
        """Flat offset of a tap with these per-axis shifts."""
        return sum(q * f for q, f in zip(shifts, self.flat))

    def rows(self, chunk: Chunk) -> int:
        """Rows of the first axis per image in ``chunk``'s slab: its output rows and the halo below them."""
        return chunk.b - chunk.a + self.qmax[0]

    def width(self, chunk: Chunk) -> int:
        """Slab positions of ``chunk``'s images (per group and channel)."""
        return chunk.images * self.rows(chunk) * self.flat[0]

    def columns(self, chunk: Chunk) -> int:
        """Output columns computed for ``chunk``: its slab positions up to the
        last output row of its last image (junk columns included, halo rows of
        the last image not)."""
        return self.width(chunk) - self.qmax[0] * self.flat[0]

    def slab_columns(self, chunk: Chunk) -> int:
        """Length of one channel's slab for ``chunk``: its positions, and the
        reach of the farthest tap past the last of them (zeros)."""
        return self.width(chunk) + self.max_offset

    def chunks(self, bytes_per_column: int, budget: int, min_rows: int = 8, long_runs: bool = False) -> list[Chunk]:
        """Chunks covering the problem, each needing about ``bytes_per_column``
        per slab column and group, within ``budget`` bytes where possible.

        Whole images are preferred, several per chunk when they fit.  Otherwise
        a chunk is a range of output rows of one image with all its groups, or
        with fewer groups when that is what it takes to hold ``min_rows`` rows
        (which also bounds the rows read twice, by two chunks); with one group
        and still fewer rows, a chunk may take up to four times the budget to
        hold ``min_rows``, and never less than one row of one group.

        ``long_runs`` prefers many images of fewer groups instead (a group's
        slab is then one long contiguous run, which elementwise operations
        over all groups at once go through fastest).
        """
        p = self.problem
        n, groups, y0, halo = p.batch, p.groups, p.out[0], self.qmax[0]
        per_image = groups * bytes_per_column * (self.extents[0] * self.flat[0])
        if long_runs and per_image * n > budget:
            per_group = n * bytes_per_column * (self.extents[0] * self.flat[0])  # all images of one group
            if per_group <= budget:
                gstep = budget // per_group
                gstep = -(-groups // -(-groups // gstep))
                return [Chunk(0, n, g0, min(groups, g0 + gstep), 0, y0) for g0 in range(0, groups, gstep)]
        if per_image <= budget:
            step = max(1, budget // per_image)
            step = -(-n // -(-n // step))  # even chunks
            return [Chunk(n0, min(n, n0 + step), 0, groups, 0, y0) for n0 in range(0, n, step)]
        row = bytes_per_column * self.flat[0]  # one slab row of one group
        want = min(y0, min_rows)
        gstep = groups
        if budget // (gstep * row) - halo < want:
            gstep = max(1, min(groups, budget // (row * (want + halo))))
        rows = budget // (gstep * row) - halo
        if rows < want and gstep == 1:
            rows = min(want, 4 * budget // row - halo)
        rows = max(1, min(y0, rows))
        rows = -(-y0 // -(-y0 // rows))  # even row chunks
        gstep = -(-groups // -(-groups // gstep))
        return [
            Chunk(i, i + 1, g0, min(groups, g0 + gstep), a, min(y0, a + rows))
            for i in range(n) for g0 in range(0, groups, gstep) for a in range(0, y0, rows)
        ]

    def fills(self, chunk: Chunk) -> Iterator[tuple[int, tuple[slice, ...] | None, tuple[slice, ...] | None]]:
        """For each plane: ``(plane, destination, source)`` index tuples of the
        copy into its slab (over ``(images, rows, E_1, ...)``) from the input
        (over ``(*S)``), or None where the plane reads no input element."""
        p = self.problem
        for index, plane in enumerate(self.planes):
            dest, src = [], []
            for axis, ph in enumerate(plane):
                start = chunk.a if axis == 0 else 0
                extent = self.rows(chunk) if axis == 0 else self.extents[axis]
                s, lo, size = p.strides[axis], p.low[axis], p.sizes[axis]
                # plane element j is input element j*s + r - lo
                jlo = max(start, -((ph.r - lo) // s))  # ceil((lo - r) / s)
                jhi = min(start + extent, (size - 1 + lo - ph.r) // s + 1)
                if jhi <= jlo:
                    break
                i0 = jlo * s + ph.r - lo
                dest.append(slice(jlo - start, jhi - start))
                src.append(slice(i0, i0 + (jhi - jlo - 1) * s + 1, s))
            else:
                yield index, tuple(dest), tuple(src)
                continue
            yield index, None, None

    def zero_regions(self, dest: tuple[slice, ...] | None, chunk: Chunk) -> list[tuple[slice, ...]]:
        """Index tuples (over ``(images, rows, E_1, ...)``) of the slab outside ``dest``."""
        if dest is None:
            return [(slice(None),) * (1 + len(self.extents))]
        regions = []
        for axis, d in enumerate(dest):
            extent = self.rows(chunk) if axis == 0 else self.extents[axis]
            before = (slice(None), *dest[:axis])
            after = (slice(None),) * (len(dest) - axis - 1)
            if d.start > 0:
                regions.append((*before, slice(0, d.start), *after))
            if d.stop < extent:
                regions.append((*before, slice(d.stop, extent), *after))
        return regions


def live_part(problem: Problem) -> tuple[Problem, tuple[int, ...], tuple[int, ...]]:
    """``problem`` restricted to what reaches the input, and per axis its first
    tap and its first output.

    On each axis the window becomes the taps ``k0 .. k1`` that read input
    elements for some output, and the outputs the range ``y0 .. y1`` of those
    that read some through them (every other tap and output reads padding
    alone); the low padding moves by ``k0 * d + y0 * s``, and one tap needs no
    dilation, one output no stride.  An axis where nothing reaches the input
    keeps one output and one tap, which reads past the input's end (zeros)."""
    window, out, strides, dilation, low, first, origin = [], [], [], [], [], [], []
    for size, k, y, s, d, lo in zip(problem.sizes, problem.window, problem.out, problem.strides, problem.dilation,
                                    problem.low):
        reach = axis_reach(size, y, k, s, 1, d, lo)
        if reach is not None:
            (k0, k1), (y0, y1) = reach.taps, reach.outputs
        else:
            k0, k1, y0, y1, lo = 0, 1, 0, 1, -size
        window.append(k1 - k0)
        out.append(y1 - y0)
        strides.append(s if y1 - y0 > 1 else 1)
        dilation.append(d if k1 - k0 > 1 else 1)
        low.append(lo - k0 * d - y0 * s)
        first.append(k0)
        origin.append(y0)
    live = replace(problem, window=tuple(window), out=tuple(out), strides=tuple(strides), dilation=tuple(dilation),
                   low=tuple(low))
    return (problem if live == problem else live), tuple(first), tuple(origin)


def geometry(problem: Problem) -> Geometry:
    """The :class:`Geometry` of a non-empty problem with at least one spatial axis:
    of its :func:`live_part`, which ``Geometry.problem`` holds (``Geometry.first``
    and ``Geometry.origin`` place it in the kernel and the output)."""
    live, first, origin = live_part(problem)
    phases = tuple(axis_phases(k, s, d) for k, s, d in zip(live.window, live.strides, live.dilation))
    qmax = tuple(((k - 1) * d) // s for k, s, d in zip(live.window, live.strides, live.dilation))
    extents = tuple(y + q for y, q in zip(live.out, qmax))
    flat = tuple(math.prod(extents[i + 1 :]) for i in range(len(extents)))
    return Geometry(live, phases, tuple(product(*phases)), extents, qmax, flat, first, origin, problem)


def fill_slab(geo: Geometry, chunk: Chunk, x: np.ndarray, slab: np.ndarray) -> None:
    """Fill ``slab`` (``(planes, G_c, C_g, geo.slab_columns(chunk))``) with
    ``chunk``'s padded phase planes of the canonical input ``x``
    (``(N', G, C_g, *S)``): the input's elements, converted to the slab's
    dtype, and zeros everywhere else (the padding, the columns past the last row)."""
    images, rows = chunk.images, geo.rows(chunk)
    body = geo.width(chunk)
    shape = (chunk.groups, slab.shape[2], images, rows, *geo.extents[1:])
    src_images = x[chunk.n0 : chunk.n1, chunk.g0 : chunk.g1]
    for index, dest, src in geo.fills(chunk):
        plane = slab[index]
        view = plane[:, :, :body].reshape(shape)
        for region in geo.zero_regions(dest, chunk):
            outside = (slice(None), slice(None), *region)
            view[outside] = 0
        plane[:, :, body:] = 0
        if dest is not None:
            assert src is not None  # fills gives both index tuples or neither
            src_index = (slice(None), slice(None), slice(None), *src)
            dest_index = (slice(None), slice(None), slice(None), *dest)
            source = src_images[src_index]  # (images, G_c, C_g, ...)
            target = view[dest_index]  # (G_c, C_g, images, ...)
            np.copyto(target, source.transpose(1, 2, 0, *range(3, source.ndim)), casting="unsafe")


def store(geo: Geometry, chunk: Chunk, res: np.ndarray, y: np.ndarray) -> None:
    """Copy the valid outputs of ``chunk``'s result ``res`` (``(G_c, O_g, C)``,
    its ``C >= geo.columns(chunk)`` columns laid out as the slab's positions,
    junk ones included; only the first ``geo.columns(chunk)`` are read) into
    the canonical output ``y`` (``(N', G, O_g, *Y)``), converting to its dtype."""
    out = geo.problem.out
    item = res.itemsize
    # (G_c, O_g, C) -> (images, G_c, O_g, rows, *Y[1:]): the valid positions, as strides into the columns
    shape = (chunk.images, res.shape[0], res.shape[1], chunk.b - chunk.a, *out[1:])
    strides = (geo.rows(chunk) * geo.flat[0] * item, res.strides[0], res.strides[1], *(f * item for f in geo.flat))
    src = np.lib.stride_tricks.as_strided(res, shape, strides, writeable=False)
    dest = y[chunk.n0 : chunk.n1, chunk.g0 : chunk.g1, :, chunk.a : chunk.b]
    np.copyto(dest, src, casting="unsafe")

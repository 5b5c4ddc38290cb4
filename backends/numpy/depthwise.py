"""Depthwise convolutions (one input channel per group): multiply-adds over shifted slices.

With one input channel per group a matrix product has nothing to contract
but the taps, so BLAS gains nothing.  Instead, on the padded, flattened phase
planes of :mod:`.geometry`, each kernel tap is one elementwise multiply of a
shifted column slice ``(G_c, 1, L)`` by the tap's weights ``(G_c, O_g, 1)``
(vectorised over groups, output channels and positions) added into the
chunk's result.  Chunks are small (:data:`WORKSPACE_BYTES`) so the slab, the
result and the product stay in cache between taps.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from polyconv import caching
from polyconv.spec.canonical import Problem

from . import caches, parallel, workspace
from .geometry import Chunk, Geometry, fill_slab, geometry, store

__all__ = ["DepthwisePlan", "plan", "run", "WORKSPACE_BYTES", "MAX_MULTIPLIER"]

#: Bounds of :data:`WORKSPACE_BYTES`, and its value where the L2 cache's size is unknown.
MIN_WORKSPACE_BYTES, MAX_WORKSPACE_BYTES = 1 << 20, 4 << 20


def _workspace_bytes(l2: int | None) -> int:
    """A chunk budget for a core with ``l2`` bytes of L2 cache (None: unknown).

    >>> [_workspace_bytes(n) >> 20 for n in (None, 512 << 10, 2 << 20, 32 << 20)]
    [4, 1, 2, 4]
    """
    if l2 is None:
        return MAX_WORKSPACE_BYTES
    return min(max(l2, MIN_WORKSPACE_BYTES), MAX_WORKSPACE_BYTES)


#: Target bytes of one chunk's slab, result and product together: one core's L2 cache
#: (:mod:`.caches`), within 1 and 4 MiB; 4 MiB where its size is unknown.
WORKSPACE_BYTES = _workspace_bytes(caches.l2_bytes())
#: Output channels per group up to which a one-channel-per-group convolution is depthwise.
MAX_MULTIPLIER = 4


@dataclass(frozen=True, eq=False)
class DepthwisePlan:
    """Per tap: ``(plane, flat offset, kernel tap index)``; and the chunks."""

    geo: Geometry
    taps: tuple[tuple[int, int, int], ...]
    chunks: tuple[Chunk, ...]


def applies(problem: Problem) -> bool:
    """One input channel per group and at most :data:`MAX_MULTIPLIER` outputs each."""
    return problem.cg == 1 and problem.og <= MAX_MULTIPLIER and problem.nspatial > 0


@caching.memoize(256)
def plan(problem: Problem, itemsize: int, budget: int | None = None) -> DepthwisePlan:
    """The plan of a non-empty problem that :func:`applies` (``budget``: bytes
    of one chunk's buffers, None for :data:`WORKSPACE_BYTES`)."""
    geo = geometry(problem)
    n = problem.nspatial
    kernel_strides = [int(np.prod(problem.window[i + 1 :])) for i in range(n)]
    taps = []
    for p, plane in enumerate(geo.planes):
        for tap in product(*(range(ph.count) for ph in plane)):
            shifts = tuple(ph.q0 + t * ph.qstep for ph, t in zip(plane, tap))
            k = sum((f + ph.k0 + t * ph.kstep) * s for ph, t, s, f in zip(plane, tap, kernel_strides, geo.first))
            taps.append((p, geo.offset(shifts), k))
    per_column = itemsize * (len(geo.planes) + 2 * problem.og)
    chunks = geo.chunks(per_column, WORKSPACE_BYTES if budget is None else budget, long_runs=True)
    return DepthwisePlan(geo, tuple(taps), tuple(chunks))


def run(dp: DepthwisePlan, x: np.ndarray, w: np.ndarray, y: np.ndarray, compute: np.dtype) -> None:
    """Fill ``y`` (``(N', G, O_g, *Y)``) with the convolution of ``x``
    (``(N', G, 1, *S)``) and ``w`` (``(G, O_g, 1, *K)``), computed in ``compute``."""
    geo = dp.geo
    problem = geo.problem
    og = problem.og
    kernel = np.ascontiguousarray(w, dtype=compute).reshape(problem.groups, og, -1, 1)  # all of w's taps
    planes = len(geo.planes)
    reach = geo.max_offset
    y = geo.computed(y)

    def work(chunk: Chunk) -> None:
        gc = chunk.groups
        length = geo.slab_columns(chunk)
        whole = planes * gc * length
        # the slab, and zeros for the farthest tap of the last group to read past it
        slab_mem = workspace.buffer("slab", whole + reach, compute)
        slab = slab_mem[:whole].reshape(planes, gc, 1, length)
        fill_slab(geo, chunk, x, slab)
        slab_mem[whole:] = 0
        # each tap reads one contiguous run of the slab, all groups at once: (G_c, 1, length), shifted;
        # the columns past a group's width are junk (they read the next group's slab)
        res = workspace.buffer("result", gc * og * length, compute).reshape(gc, og, length)
        tmp = workspace.buffer("product", gc * og * length, compute).reshape(gc, og, length)
        ker = kernel[chunk.g0 : chunk.g1]
        for i, (p, offset, k) in enumerate(dp.taps):
            start = p * gc * length + offset
            src = slab_mem[start : start + gc * length].reshape(gc, 1, length)
            if i == 0:
                np.multiply(src, ker[:, :, k], out=res)
            else:
                np.multiply(src, ker[:, :, k], out=tmp)
                np.add(res, tmp, out=res)
        store(geo, chunk, res[:, :, : geo.width(chunk)], y)

    parallel.run_chunks(work, dp.chunks)

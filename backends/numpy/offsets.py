"""The shifted-window GEMM: one matrix product per group of kernel taps, no index gather.

On the padded, flattened phase planes of :mod:`.geometry` (channels first:
``(G, C_g, L)`` per plane), the inputs of one tap for a run of output
positions are a contiguous column slice.  The kernel taps are split in two
by a *level* ``j``:

* the taps of the inner axes ``j..n-1`` are *concatenated*: their shifted
  slices are copied, in one strided copy per plane, into a windows buffer
  ``(G, C_g * taps_inner, columns)`` (this is im2col, restricted to the inner
  axes, and of contiguous runs);
* the taps of the outer axes ``0..j-1`` are *slid*: each is one matrix
  product with a column slice of that buffer, shifted by the tap's offset,
  accumulated into the chunk's result.

Level 0 is a full im2col (one product with ``K = C_g * taps``); level ``n``
copies nothing and makes one product per tap with ``K = C_g`` straight from
the slab.  :func:`plan` picks the level a cost model prices lowest
(:func:`level_seconds`): the products, BLAS being slower on short
contractions, and the elementwise traffic around them, the additions of the
slid products into the result against the copies into the windows buffer.
Groups are a batch axis of every product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np

from polyconv import caching
from polyconv.spec.canonical import Problem

from . import parallel, workspace
from .geometry import Chunk, Geometry, fill_slab, geometry, store

__all__ = ["OffsetsPlan", "plan", "run", "products", "level_seconds", "WORKSPACE_BYTES"]

#: The level's cost model (:func:`level_seconds`), measured on a 2-core Intel Xeon VM with AVX-512
#: (OpenBLAS, float32, two threads): NumPy's elementwise traffic (an ``add`` of two result-sized
#: arrays into one, or a strided copy into the windows buffer, reads and writes about 12 bytes
#: an element) ran at 28 GB/s; a product ``(O_g, K) @ (K, columns)`` at about
#: ``GEMM_FLOPS * K / (K + HALF_CONTRACTION) * O_g / (O_g + HALF_OUTPUTS)`` (K = 16, 64, 192:
#: 100, 142, 150 GFLOP/s with 64 outputs; 69, 104, 114 with 32).
ELEMENTWISE_BYTES = 28e9
GEMM_FLOPS = 185e9
HALF_CONTRACTION = 9
HALF_OUTPUTS = 16
#: Multiply-adds of one product (per group) below which BLAS libraries run it on one thread
#: (OpenBLAS: 65536 * GEMM_MULTITHREAD_THRESHOLD, 4 by default), so that the chunks go on several threads.
SMALL_PRODUCT = 1 << 18
#: Target bytes of one chunk's slab, windows buffer and result together.
WORKSPACE_BYTES = 8 << 20


@dataclass(frozen=True)
class Term:
    """One matrix product of a chunk: windows rows ``k0:k1`` (of ``source``),
    shifted by ``offset`` columns, times kernel columns ``w0:w1``.

    ``source`` is -1 for the windows buffer, or the plane whose slab is read directly.
    """

    source: int
    k0: int
    k1: int
    offset: int
    w0: int
    w1: int


@dataclass(frozen=True)
class Copy:
    """The windows of one plane: its taps of the inner axes, written to buffer rows ``k0:``.

    Attributes
    ----------
    plane
        The phase plane.
    start
        Flat offset of the first copied tap.
    counts, steps
        Per inner axis, the taps and their flat step.
    k0
        First buffer row (of ``C_g * prod(counts)``).
    """

    plane: int
    start: int
    counts: tuple[int, ...]
    steps: tuple[int, ...]
    k0: int


@dataclass(frozen=True, eq=False)
class OffsetsPlan:
    """How to compute one problem (see the module docstring)."""

    geo: Geometry
    level: int
    copies: tuple[Copy, ...]
    rows: int  # windows buffer rows per group
    extra: int  # columns of the windows buffer past a chunk's outputs (the slid taps' reach)
    terms: tuple[Term, ...]
    #: kernel column order: flat indices into the kernel's (C_g * taps) columns, or None for the identity
    kernel_index: np.ndarray | None
    chunks: tuple[Chunk, ...]
    #: every product is below :data:`SMALL_PRODUCT` multiply-adds (BLAS runs it on one thread)
    small_products: bool = False


def level_seconds(problem: Problem, geo: Geometry, level: int, itemsize: int = 4) -> float:
    """The model's seconds per output column (of one group) at ``level``: its products, the
    additions of all but the first into the result, and the copies into the windows buffer.

    A product contracting over ``K`` costs as one over ``K + HALF_CONTRACTION`` at the full rate
    (BLAS's loss on short contractions); each further product costs an addition of a result;
    each buffer row, a copy.  Concatenating taps trades the additions of the products it saves
    for the copies it makes: 3x3 taps on 64 channels with 64 outputs took 12.8 ms in the
    bench's ResNet shape with three products of ``K = 192``, 15.5 with one of ``K = 576`` and
    15.8 with nine of ``K = 64`` (8 MiB chunks, one process), the order the model puts them in.

    >>> from polyconv.spec.canonical import Problem
    >>> resnet = Problem(8, 1, 64, 64, (56, 56), (3, 3), (56, 56), (1, 1), (1, 1), (1, 1))
    >>> g = geometry(resnet)
    >>> [round(level_seconds(resnet, g, j) * 1e9) for j in range(3)]  # ns: level 1
    [753, 659, 788]
    """
    og, n = problem.og, problem.nspatial
    contractions = []  # of each product
    rows = 0
    for plane in geo.planes:
        inner = problem.cg * math.prod(ph.count for ph in plane[level:])
        contractions += [inner] * math.prod(ph.count for ph in plane[:level])
        rows += inner if level < n else 0
    if level == 0:  # one product over every plane's rows (plan's single term)
        contractions = [rows]
    rate = GEMM_FLOPS * (4 / itemsize) * og / (og + HALF_OUTPUTS)
    products = sum(2 * og * (k + HALF_CONTRACTION) for k in contractions) / rate
    elementwise = 3 * itemsize * ((len(contractions) - 1) * og + rows) / ELEMENTWISE_BYTES
    return products + elementwise


#: Levels priced within this fraction of the cheapest count as equal, and the deepest of them (the
#: least copying, the smallest windows buffer) is taken: a 1-d kernel of 5 taps on 128 channels and
#: 128 outputs is priced 0.1% apart at levels 0 and 1, and ran 5% faster at level 1.
LEVEL_TOLERANCE = 0.02


def _level(problem: Problem, geo: Geometry, itemsize: int) -> int:
    """The deepest level :func:`level_seconds` prices within :data:`LEVEL_TOLERANCE` of the cheapest."""
    seconds = [level_seconds(problem, geo, j, itemsize) for j in range(problem.nspatial + 1)]
    cheapest = min(seconds)
    return max(j for j, t in enumerate(seconds) if t <= cheapest * (1 + LEVEL_TOLERANCE))


@caching.memoize(256)
def plan(problem: Problem, itemsize: int, level: int | None = None, budget: int | None = None) -> OffsetsPlan:
    """The plan of a non-empty problem with at least one spatial axis.

    Parameters
    ----------
    problem
        The convolution.
    itemsize
        Bytes per element of the accumulation dtype.
    level
        The slid axes (None: :func:`_level` chooses).
    budget
        Target bytes of one chunk's buffers (None: :data:`WORKSPACE_BYTES`).
    """
    geo = geometry(problem)  # of what reaches the input: geo.first and geo.origin place it
    n, cg = problem.nspatial, problem.cg
    if level is None:
        level = _level(problem, geo, itemsize)
    copies: list[Copy] = []
    terms: list[Term] = []
    index: list[int] = []
    rows = 0
    extra = 0
    kernel_strides = [math.prod(problem.window[i + 1 :]) for i in range(n)]
    for p, plane in enumerate(geo.planes):
        outer, inner = plane[:level], plane[level:]
        inner_taps = list(product(*(range(ph.count) for ph in inner)))
        if level < n:
            k0 = rows
            rows += cg * len(inner_taps)
            steps = tuple(ph.qstep * f for ph, f in zip(inner, geo.flat[level:]))
            start = geo.offset((0,) * level + tuple(ph.q0 for ph in inner))
            copies.append(Copy(p, start, tuple(ph.count for ph in inner), steps, k0))
            # the slid taps' farthest shift, first shift included: a strided, dilated axis's
            # phase can start past shift 0 (tap k0 reads shift (k0 * dilation) // stride)
            extra = max(extra, sum((ph.q0 + (ph.count - 1) * ph.qstep) * f for ph, f in zip(outer, geo.flat)))
        for slid in product(*(range(ph.count) for ph in outer)):
            shifts = tuple(ph.q0 + t * ph.qstep for ph, t in zip(outer, slid))
            w0 = len(index)
            for c in range(cg):
                for tap in inner_taps if level < n else [()]:
                    ks = [f + ph.k0 + t * ph.kstep for ph, t, f in zip(plane, (*slid, *tap), geo.first)]
                    index.append(c * problem.taps + sum(k * s for k, s in zip(ks, kernel_strides)))
            if level < n:
                terms.append(Term(-1, k0, rows, geo.offset(shifts + (0,) * (n - level)), w0, len(index)))
            else:
                terms.append(Term(p, 0, cg, geo.offset(shifts), w0, len(index)))
    if level == 0 and len(terms) > 1:  # every plane's product has offset 0: one product
        terms = [Term(-1, 0, rows, 0, 0, len(index))]
    kernel_index = np.asarray(index, dtype=np.intp)
    identity = len(index) == cg * problem.taps and bool((kernel_index == np.arange(len(index))).all())
    per_column = itemsize * (len(geo.planes) * cg + rows + 2 * problem.og)
    chunks = geo.chunks(per_column, WORKSPACE_BYTES if budget is None else budget)
    largest = max((t.w1 - t.w0) for t in terms) * problem.og * max(geo.columns(c) for c in chunks)
    return OffsetsPlan(geo, level, tuple(copies), rows, extra, tuple(terms), None if identity else kernel_index,
                       tuple(chunks), largest < SMALL_PRODUCT)


def products(offsets_plan: OffsetsPlan) -> list[tuple[int, int, int, int]]:
    """The matrix products :func:`run` makes, in order: ``(groups, O_g, K, columns)``
    each, ``(groups, O_g, K) @ (groups, K, columns)`` (what the benchmark times
    alone, to tell the time in BLAS from the time around it).

    >>> from polyconv.spec.canonical import Problem
    >>> pl = plan(Problem(1, 1, 64, 64, (16, 16), (3, 3), (14, 14), (1, 1), (1, 1), (0, 0)), 4)
    >>> products(pl)[0][:3]  # three products of three taps each
    (1, 64, 192)
    """
    out = []
    for chunk in offsets_plan.chunks:
        cols = offsets_plan.geo.columns(chunk)
        for t in offsets_plan.terms:
            out.append((chunk.groups, offsets_plan.geo.problem.og, t.w1 - t.w0, cols))
    return out


def run(offsets_plan: OffsetsPlan, x: np.ndarray, w: np.ndarray, y: np.ndarray, compute: np.dtype) -> None:
    """Fill ``y`` (``(N', G, O_g, *Y)``) with the convolution of ``x``
    (``(N', G, C_g, *S)``) and ``w`` (``(G, O_g, C_g, *K)``), computed in ``compute``."""
    geo = offsets_plan.geo
    problem = geo.problem
    cg, og = problem.cg, problem.og
    groups = problem.groups
    kernel = np.ascontiguousarray(w, dtype=compute).reshape(groups, og, -1)  # all of w's taps
    if offsets_plan.kernel_index is not None:
        kernel = kernel[:, :, offsets_plan.kernel_index]
    planes = len(geo.planes)
    item = compute.itemsize
    y = geo.computed(y)

    def work(chunk: Chunk) -> None:
        gc, cols = chunk.groups, geo.columns(chunk)
        length = geo.slab_columns(chunk)
        slab = workspace.buffer("slab", planes * gc * cg * length, compute).reshape(planes, gc, cg, length)
        fill_slab(geo, chunk, x, slab)
        ext = cols + offsets_plan.extra
        if offsets_plan.copies:
            buf = workspace.buffer("windows", gc * offsets_plan.rows * ext, compute).reshape(gc, offsets_plan.rows, ext)
            for cp in offsets_plan.copies:
                src = slab[cp.plane]
                strides = (src.strides[0], src.strides[1], *(s * item for s in cp.steps), item)
                window = np.lib.stride_tricks.as_strided(
                    src[:, :, cp.start :], (gc, cg, *cp.counts, ext), strides, writeable=False
                )
                dest = buf[:, cp.k0 : cp.k0 + cg * math.prod(cp.counts), :].reshape(gc, cg, *cp.counts, ext)
                np.copyto(dest, window)
        res = workspace.buffer("result", gc * og * cols, compute).reshape(gc, og, cols)
        ker = kernel[chunk.g0 : chunk.g1]
        for i, t in enumerate(offsets_plan.terms):
            src = buf[:, t.k0 : t.k1] if t.source < 0 else slab[t.source]
            a, b = ker[:, :, t.w0 : t.w1], src[:, :, t.offset : t.offset + cols]
            if i == 0:
                np.matmul(a, b, out=res)
            else:  # contiguous blocks: NumPy adds them as one flat run
                tmp = workspace.buffer("product", gc * og * cols, compute).reshape(gc, og, cols)
                np.matmul(a, b, out=tmp)
                np.add(res, tmp, out=res)
        store(geo, chunk, res, y)

    if offsets_plan.small_products:  # BLAS runs them on one thread: run the chunks on several
        parallel.run_chunks(work, offsets_plan.chunks)
    else:
        for chunk in offsets_plan.chunks:
            work(chunk)

"""The dask graph of a convolution: block tasks planned from the output side.

The operands go to the canonical layout first (lazy transposes, no data
moved), the kernel becomes a one-chunk dask array, and batch groups become
one convolution per group.  Then, for each batch chunk, each combination of
spatial output blocks (:func:`.blocks.plan_axis`) and each feature segment
(:func:`.blocks.feature_segments`), one task joins the input pieces the
block needs (slices of at most a few neighbouring chunks, taken inside the
task) and runs the block convolution on the chunk's own backend
(:mod:`.tasks`).  Partial results of one output block (feature chunks that
cut a group's contraction) are added up in a tree.  The output's chunks
follow the input's: the lhs's batch chunks, one chunk per output feature
range of the segments, and the spatial blocks.

The padded or dilated input is never built: each block is padded and
dilated by the chunk backend inside its own task.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from operator import getitem
from typing import Any

import array_api_compat

from polyconv.algorithm import fft_mode
from polyconv.errors import MixedArraysError
from polyconv.spec import ConvDimensionNumbers, ConvSpec, PatchesSpec, conv_spec
from polyconv.spec.dimension_numbers import inverse_permutation
from polyconv.spec.dtypes import numpy_dtype

from . import tasks
from .blocks import AxisBlock, Segment, chunk_bounds, feature_segments, pieces, plan_axis

__all__ = ["conv", "kernel_grad", "as_dask", "canonical_spec"]

_NARROW_FLOATS = frozenset({"float16", "bfloat16"})


def _da() -> Any:
    import dask.array as da

    return da


def as_dask(x: Any, like: Any) -> Any:
    """``x`` as a one-chunk dask array (a copy of a NumPy or CuPy array: the
    result is lazy, and must see the values of the call), checked to hold
    chunks of the same kind as ``like``'s."""
    da = _da()
    if not isinstance(x, da.Array):
        xp = array_api_compat.array_namespace(x)
        x = da.from_array(xp.asarray(x, copy=True), chunks=-1)
    if type(x._meta) is not type(like._meta):
        raise MixedArraysError(
            f"the dask backend: an operand holds {type(x._meta).__module__}.{type(x._meta).__name__} chunks "
            f"and another {type(like._meta).__module__}.{type(like._meta).__name__} chunks; polyconv never "
            "converts between frameworks: convert one of them explicitly"
        )
    return x


def _canonical_dn(rank: int) -> ConvDimensionNumbers:
    axes = tuple(range(rank))
    return ConvDimensionNumbers(axes, axes, axes)


def canonical_spec(
    spec: ConvSpec,
    lhs_shape: Sequence[int],
    rhs_shape: Sequence[int],
    *,
    padding: Sequence[tuple[int, int]] | None = None,
    groups: int | None = None,
    batch_groups: int | None = None,
    preferred: str | None = None,
    dtype: str | None = None,
) -> ConvSpec:
    """``spec`` for operands in the canonical layout, with new shapes and,
    optionally, another padding, feature or batch group count,
    ``preferred_element_type`` or operand dtype (with ``dtype``, no
    ``preferred_element_type`` unless ``preferred`` names one)."""
    if dtype is None:
        dtype, preferred = spec.dtype, spec.preferred_element_type if preferred is None else preferred
    return conv_spec(
        tuple(lhs_shape), tuple(rhs_shape), dtype, dtype, spec.window_strides,
        tuple(spec.padding if padding is None else padding), spec.lhs_dilation, spec.rhs_dilation,
        _canonical_dn(len(lhs_shape)), spec.feature_group_count if groups is None else groups,
        spec.batch_group_count if batch_groups is None else batch_groups, spec.precision, preferred,
    )


def _meta(like: Any, ndim: int, dtype: str) -> Any:
    from dask.array import utils

    meta_from_array: Any = utils.meta_from_array  # untyped in dask
    return meta_from_array(like._meta, ndim, dtype=numpy_dtype(dtype))


def _zeros(like: Any, shape: tuple[int, ...], dtype: str, name: str) -> Any:
    """A one-chunk dask array of zeros in the chunk type of ``like``."""
    da = _da()
    from dask.highlevelgraph import HighLevelGraph

    meta = _meta(like, len(shape), dtype)
    dsk: dict[Any, Any] = {(name, *(0,) * len(shape)): (tasks.zeros, meta, shape, dtype)}
    return da.Array(HighLevelGraph.from_collections(name, dsk, dependencies=[]), name,
                    tuple((s,) for s in shape), meta=meta)


def conv(lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
    """``conv_general_dilated`` of the dask array ``lhs`` and the kernel ``rhs``
    (a NumPy or CuPy array, or a dask array) for the validated ``spec``: a lazy
    dask array in the layout of ``spec``'s output."""
    dn = spec.dimension_numbers
    x = lhs.transpose(dn.lhs_spec)
    w = as_dask(rhs, lhs).transpose(dn.rhs_spec).rechunk(-1)
    groups = _batch_groups(x, w, canonical_spec(spec, x.shape, w.shape))
    parts = [_Plan(xg, wg, sg).forward() for _, xg, wg, sg in groups]
    if len(parts) > 1:  # side by side along the output features, on the first group's batch chunks
        parts = [_da().concatenate([p.rechunk({0: parts[0].chunks[0]}) for p in parts], axis=1)]
    return parts[0].transpose(inverse_permutation(dn.out_spec))


def patches(lhs: Any, spec: PatchesSpec) -> Any:
    """``conv_general_dilated_patches`` of the dask array ``lhs``: one task per
    block of batch and channels, the spatial axes whole in each block (rechunked
    so), copying (:func:`tasks.block_patches`, :func:`polyconv.gather.patches`).
    Patches keep the input's batch and channel chunks; a channel chunk of ``c``
    gives ``c`` times the window's taps consecutive features (channel-major)."""
    conv = spec.conv
    dn = conv.dimension_numbers
    rank = lhs.ndim
    x = lhs.transpose(dn.lhs_spec).rechunk({a: -1 for a in range(2, rank)})
    taps = math.prod(spec.filter_shape)
    chunks = (x.chunks[0], tuple(c * taps for c in x.chunks[1]), *((y,) for y in conv.out_spatial))
    out: Any = x.map_blocks(tasks.block_patches, conv.dtype, spec.filter_shape, conv.window_strides, conv.padding,
                            conv.lhs_dilation, conv.rhs_dilation, conv.preferred_element_type, chunks=chunks,
                            meta=_meta(x, rank, conv.out_dtype))
    return out.transpose(inverse_permutation(dn.out_spec))


def position_products(a: Any, b: Any) -> Any:
    """The batched matrix product of the dask arrays ``a`` ``(*Y, N, I)`` and
    ``b`` ``(*Y, I, O)``, block by block (``I`` is one chunk in both; ``*Y``
    are aligned): a local convolution's products, each chunk's by
    :func:`tasks.matmul`, which keeps NumPy's warnings on ``inf * 0`` out of
    the user's ``compute()``."""
    batch = tuple(range(3, a.ndim + 1))
    meta = tasks.matmul(a._meta, b._meta)  # empty chunks: the product's type and dtype
    out: Any = _da().blockwise(tasks.matmul, (*batch, 0, 2), a, (*batch, 0, 1), b, (*batch, 1, 2), meta=meta,
                               concatenate=True)
    return out


def kernel_grad(lhs: Any, rhs: Any, cotangent: Any, spec: ConvSpec, dtype: str) -> Any:
    """The cotangent of the kernel, in ``dtype``, as a one-chunk dask array in
    the kernel's layout: each block's share computed where the block is
    (its input pieces and its slice of the cotangent), then added up."""
    dn = spec.dimension_numbers
    x = lhs.transpose(dn.lhs_spec)
    w = as_dask(rhs, lhs).transpose(dn.rhs_spec).rechunk(-1)
    cot = as_dask(cotangent, lhs).transpose(dn.out_spec)
    parts = [_Plan(xg, wg, sg).kernel_grad(cot[:, features], dtype)
             for features, xg, wg, sg in _batch_groups(x, w, canonical_spec(spec, x.shape, w.shape))]
    grad = parts[0] if len(parts) == 1 else _da().concatenate(parts, axis=0)
    return grad.transpose(inverse_permutation(dn.rhs_spec))


def _batch_groups(x: Any, w: Any, cs: ConvSpec) -> list[tuple[slice, Any, Any, ConvSpec]]:
    """The convolutions without batch groups that ``cs`` is: for each batch group,
    its output features, its slice of the batch and of the kernel, and its spec."""
    b = cs.batch_group_count
    if b == 1:
        return [(slice(None), x, w, cs)]
    nb, ob = x.shape[0] // b, w.shape[0] // b
    sub = canonical_spec(cs, (nb, *x.shape[1:]), (ob, *w.shape[1:]), batch_groups=1)
    return [(slice(g * ob, (g + 1) * ob), x[g * nb:(g + 1) * nb], w[g * ob:(g + 1) * ob], sub) for g in range(b)]


class _Plan:
    """The blocks of one canonical convolution without batch groups."""

    def __init__(self, x: Any, w: Any, cs: ConvSpec) -> None:
        self.x, self.w, self.cs = x, w, cs
        self.fft = fft_mode()  # the blocks are computed later, in other threads: they take the caller's mode
        self.token = ""  # set by the graph built (forward, kernel_grad): every key it makes holds it
        self.out_dtype = cs.out_dtype
        self.empty = 0 in cs.out_shape or cs.in_features == 0 or 0 in cs.window
        if self.empty:
            return
        self.axes: list[tuple[AxisBlock, ...]] = [
            plan_axis(n, x.chunks[2 + d], k, s, p, ld, rd)
            for d, (n, k, s, p, ld, rd) in enumerate(zip(
                cs.lhs_spatial, cs.window, cs.window_strides, cs.padding, cs.lhs_dilation, cs.rhs_dilation))
        ]
        self.bounds = [chunk_bounds(c) for c in x.chunks[2:]]
        self.segments = feature_segments(x.chunks[1], cs.feature_group_count, cs.out_features)
        self.ranges = sorted({(s.out_start, s.out_stop) for s in self.segments})
        self.summed = any(sum(1 for s in self.segments if (s.out_start, s.out_stop) == r) > 1 for r in self.ranges)
        self.dsk: dict[Any, Any] = {}
        self.pieces: dict[Any, tuple[str, int]] = {}  # (chunk key, features, spatial ranges) -> its task's key
        self.count = 0

    def _name(self, graph: str, *inputs: Any) -> str:
        """Start the graph ``graph``: its name, and the token of every key it
        makes, cover everything its values depend on (the graph's kind, the
        operands' names, the spec, the FFT mode, and ``inputs``), so that two
        graphs share a key only when that key's value is the same."""
        from dask.base import tokenize

        self.token = tokenize(graph, self.x.name, self.w.name, repr(self.cs), self.fft, *inputs)
        return f"{graph}-{self.token}"

    def _key(self, kind: str) -> tuple[str, int]:
        self.count += 1
        return (f"{kind}-{self.token}", self.count)

    def _blocks(self) -> Iterator[tuple[int, tuple[int, ...], list[AxisBlock]]]:
        """Every output block but its features: the batch chunk, the index of the
        spatial block along each axis, and those blocks."""
        for ib in range(len(self.x.chunks[0])):
            for combo in itertools.product(*(range(len(a)) for a in self.axes)):
                yield ib, combo, [a[i] for a, i in zip(self.axes, combo)]

    def _out_chunks(self) -> tuple[tuple[int, ...], ...]:
        """The output's chunks: the lhs's batch chunks, the segments' output feature
        ranges, the spatial blocks."""
        return (
            self.x.chunks[0], tuple(b - a for a, b in self.ranges),
            *(tuple(b.out_stop - b.out_start for b in a) for a in self.axes),
        )

    def _kernel_slices(self) -> list[tuple[str, int]]:
        wkey = (self.w.name, *(0,) * self.w.ndim)
        keys = []
        for seg in self.segments:
            key = self._key("conv-kernel-slice")
            self.dsk[key] = (getitem, wkey, (slice(seg.out_start, seg.out_stop), slice(*seg.kernel_in)))
            keys.append(key)
        return keys

    def _lhs(self, ib: int, seg: Segment, blocks: Sequence[AxisBlock]) -> Any:
        """The nested list of the input pieces of one block: a chunk's key where the
        block takes the whole chunk, else the key of a task slicing the piece out
        (so that only the piece, a halo say, travels to the block's worker)."""
        per_axis = [pieces(bounds, b.in_start, b.in_stop) for bounds, b in zip(self.bounds, blocks)]
        whole_features = seg.start == 0 and seg.stop == self.x.chunks[1][seg.chunk]

        def nest(d: int, index: tuple[int, ...], local: tuple[tuple[int, int], ...]) -> Any:
            if d < len(per_axis):
                return [nest(d + 1, (*index, j), (*local, (lo, hi))) for j, lo, hi in per_axis[d]]
            key = (self.x.name, ib, seg.chunk, *index)
            sizes = [self.x.chunks[2 + a][j] for a, j in enumerate(index)]
            if whole_features and all(lo == 0 and hi == n for (lo, hi), n in zip(local, sizes)):
                return key
            piece = (key, seg.start, seg.stop, local)
            if piece not in self.pieces:
                self.pieces[piece] = self._key("conv-piece")
                slices = (slice(None), slice(seg.start, seg.stop), *(slice(lo, hi) for lo, hi in local))
                self.dsk[self.pieces[piece]] = (getitem, key, slices)
            return self.pieces[piece]

        return nest(0, (), ())

    def _block_spec(self, ib: int, seg: Segment, blocks: Sequence[AxisBlock], preferred: str | None,
                    dtype: str | None = None) -> ConvSpec:
        lhs_shape = (self.x.chunks[0][ib], seg.stop - seg.start, *(b.in_stop - b.in_start for b in blocks))
        rhs_shape = (seg.out_stop - seg.out_start, seg.kernel_in[1] - seg.kernel_in[0], *self.cs.window)
        return canonical_spec(self.cs, lhs_shape, rhs_shape, padding=[b.padding for b in blocks],
                              groups=max(seg.groups, 1), preferred=preferred, dtype=dtype)

    def _tree(self, keys: list[Any]) -> Any:
        """Add the partial results ``keys`` up pairwise; the key of the sum."""
        while len(keys) > 1:
            level = []
            for a, b in zip(keys[::2], keys[1::2]):
                key = self._key("conv-sum")
                self.dsk[key] = (tasks.total, a, b)
                level.append(key)
            if len(keys) % 2:
                level.append(keys[-1])
            keys = level
        return keys[0]

    def _array(self, name: str, chunks: tuple[tuple[int, ...], ...], dtype: str, deps: list[Any]) -> Any:
        from dask.highlevelgraph import HighLevelGraph

        graph = HighLevelGraph.from_collections(name, self.dsk, dependencies=deps)
        return _da().Array(graph, name, chunks, meta=_meta(self.x, len(chunks), dtype))

    def forward(self) -> Any:
        """The convolution, as a dask array in the canonical layout."""
        cs = self.cs
        name = self._name("conv")
        if self.empty:
            return _zeros(self.x, cs.out_shape, self.out_dtype, name)
        partial = "float32" if self.summed and self.out_dtype in _NARROW_FLOATS else self.out_dtype
        preferred = cs.preferred_element_type if partial == self.out_dtype else partial
        kernels = self._kernel_slices()
        for ib, combo, blocks in self._blocks():
            parts: dict[tuple[int, int], list[Any]] = defaultdict(list)
            for seg, kernel in zip(self.segments, kernels):
                key = self._key("conv-block")
                spec = self._block_spec(ib, seg, blocks, preferred)
                self.dsk[key] = (tasks.block_conv, spec, self._lhs(ib, seg, blocks), kernel, self.fft)
                parts[(seg.out_start, seg.out_stop)].append(key)
            for jf, r in enumerate(self.ranges):
                top = self._tree(parts[r])
                out_key = (name, ib, jf, *combo)
                self.dsk[out_key] = (tasks.cast, top, self.out_dtype) if partial != self.out_dtype else top
        return self._array(name, self._out_chunks(), self.out_dtype, [self.x, self.w])

    def kernel_grad(self, cot: Any, dtype: str) -> Any:
        """The kernel's cotangent (canonical layout, one chunk) for the canonical
        output cotangent ``cot``, which is rechunked to the forward's blocks."""
        cs = self.cs
        shape = tuple(self.w.shape)
        if self.empty:
            return _zeros(self.x, shape, dtype, self._name("conv-kernel-grad", cot.name, dtype))
        cot = cot.rechunk(self._out_chunks())
        name = self._name("conv-kernel-grad", cot.name, dtype)
        # each block's share is computed and added up in the cotangent's dtype (float32 for
        # float16 and bfloat16), as the whole kernel's would be, and cast to `dtype` at the end
        partial = "float32" if cs.out_dtype in _NARROW_FLOATS else cs.out_dtype
        kernels = self._kernel_slices()
        features = [self.ranges.index((seg.out_start, seg.out_stop)) for seg in self.segments]
        shares: dict[int, list[Any]] = defaultdict(list)
        for ib, combo, blocks in self._blocks():
            for i, (seg, kernel, jf) in enumerate(zip(self.segments, kernels, features)):
                key = self._key("conv-kernel-grad-block")
                spec = self._block_spec(ib, seg, blocks, None, dtype=partial)
                self.dsk[key] = (tasks.block_kernel_grad, spec, self._lhs(ib, seg, blocks), kernel,
                                 (cot.name, ib, jf, *combo), self.fft)
                shares[i].append(key)
        assembled = [  # lists, not tuples: dask finds the keys inside lists
            [(slice(seg.out_start, seg.out_stop), slice(*seg.kernel_in)), self._tree(shares[i])]
            for i, seg in enumerate(self.segments)
        ]
        out_key: tuple[Any, ...] = (name, *(0,) * len(shape))
        self.dsk[out_key] = (tasks.assemble, _meta(self.x, len(shape), dtype), shape, dtype, assembled)
        return self._array(name, tuple((s,) for s in shape), dtype, [self.x, self.w, cot])

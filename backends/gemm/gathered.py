"""Convolution as gathered matrix products, in bounded memory, on any array namespace.

The input is laid out as ``(G, N', S_1, ..., S_n, C_g)``: one block per group
(feature groups split the channels, batch groups split the batch), channels
last, in the accumulation dtype, with one more slot, of zeros, at the end of
each spatial axis on which some window reads padding or a hole of lhs
dilation.  The kernel becomes ``(G, taps * C_g, O_g)``.  Output rows (batch
times output positions) are then processed in chunks: for a chunk of rows
and a chunk of kernel taps, one ``take`` gathers the windows into a
``(G, rows, taps * C_g)`` matrix (the per-axis tables of :mod:`.windows` fold
strides, dilations, padding and cropping into the gather, a zero being read
from the zero slot) and one batched matrix product with the kernel gives the
chunk's output.

Only a chunk of the windows matrix exists at any time; its size is bounded
by ``workspace_bytes`` (the tap chunk shrinks when a single row of windows
would not fit), so memory beyond the input copy and the output is bounded
whatever the convolution.

Everything that depends on the spec alone (the dtype plan, the chunks, the
per-axis tables, and for small convolutions the gather indices themselves)
is worked out once per spec by :func:`layout` and cached.

The arrays are handled only through the array API standard: the namespace
``xp`` (NumPy itself from 2.0, ``array_api_compat.array_namespace(...)`` of
any array-API array, CuPy) provides ``permute_dims``, ``reshape``,
``astype``, ``concat``, ``zeros``, ``take``, ``matmul``, ``round`` and
``asarray``, and the operands' device is passed to every array made.  No
array is written to in place, so immutable arrays work too.  The index
arrays are NumPy arrays computed on the host and moved to the operands'
device once per chunk.  One function outside the standard is used where the
namespace has it: ``ascontiguousarray`` (NumPy, CuPy), which gives the result
and the kernel a C-contiguous layout in the same pass as their dtype
conversion.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import array_api_compat
import numpy as np

from polyconv import caching
from polyconv.spec import ConvSpec, dtype_bits, dtype_kind
from polyconv.spec.canonical import problem as canonical_problem
from polyconv.spec.dtypes import namespace_dtype

from .accumulation import GemmDtypes, plan_dtypes
from .windows import axis_table

__all__ = [
    "conv_general_dilated", "layout", "Layout", "WORKSPACE_BYTES", "MIN_ROWS", "CACHED_INDEX_ENTRIES",
]

#: Upper bound on the windows matrix and its index array for one chunk.
WORKSPACE_BYTES = 32 << 20
#: Rows per chunk below which the tap axis is split instead.
MIN_ROWS = 256
#: Index arrays up to this many entries in all are kept with their layout, for repeated calls.
CACHED_INDEX_ENTRIES = 1 << 15

_NUMPY_IS_STANDARD = hasattr(np, "permute_dims")  # NumPy 2 follows the array API standard


def conv_general_dilated(
    xp: Any,
    lhs: Any,
    rhs: Any,
    spec: ConvSpec,
    workspace_bytes: int = WORKSPACE_BYTES,
    available: Collection[str] | None = None,
) -> Any:
    """``conv_general_dilated`` of two arrays of namespace ``xp`` for a validated spec.

    Parameters
    ----------
    xp
        The operands' array namespace (``numpy`` itself is fine, on NumPy 1.x too).
    lhs, rhs
        The operands, on one device.
    spec
        The validated convolution (its dtypes must be ones ``xp`` has).
    workspace_bytes
        Bound on one chunk's windows matrix and index array.
    available
        Canonical names of the dtypes the device offers (None: all); the
        accumulation dtype is chosen among them (:func:`.dtypes.plan_dtypes`).

    Returns
    -------
    array
        The result, of ``xp``, on the operands' device, with ``spec.out_shape``
        and ``spec.out_dtype``.
    """
    if xp is np and not _NUMPY_IS_STANDARD:  # NumPy 1.x: array-api-compat's wrapper of it
        import array_api_compat.numpy as xp
    lay = layout(spec, workspace_bytes, None if available is None else frozenset(available))
    plan = lay.plan
    device = array_api_compat.device(lhs)
    out_dtype = namespace_dtype(xp, plan.out, lhs)
    if lay.empty:  # nothing to add up: every sum is empty
        return xp.zeros(spec.out_shape, dtype=out_dtype, device=device)

    groups, nb, cg, og, n = lay.groups, lay.nb, lay.cg, lay.og, spec.nspatial
    compute = namespace_dtype(xp, plan.compute, lhs)
    x = _input_blocks(xp, lhs, spec, lay, compute, device)  # (G, length, cg)
    w = _kernel_blocks(xp, rhs, spec, lay, compute)  # (G, taps * cg, og)

    parts = []
    for r0 in range(0, lay.rows, lay.row_chunk):
        r1 = min(lay.rows, r0 + lay.row_chunk)
        acc = None
        for k0 in range(0, lay.taps, lay.tap_chunk):
            k1 = min(lay.taps, k0 + lay.tap_chunk)
            index = xp.asarray(lay.index(r0, r1, k0, k1), device=device)
            cols = xp.reshape(xp.take(x, index, axis=1), (groups, r1 - r0, (k1 - k0) * cg))
            part = xp.matmul(cols, w[:, k0 * cg : k1 * cg, :])
            acc = part if acc is None else acc + part
        parts.append(acc)
    out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)

    # (G, nb * Y, og) -> (nb, *Y, G, og) -> (nb, *Y, G * og) -> output layout
    out_sp = spec.out_spatial
    if groups == 1:
        result = xp.reshape(out, (nb, *out_sp, og))
    else:
        result = xp.reshape(out, (groups, nb, *out_sp, og))
        result = xp.permute_dims(result, (1, *range(2, n + 2), 0, n + 2))
        result = xp.reshape(result, (nb, *out_sp, groups * og))
    if lay.out_perm is not None:
        result = xp.permute_dims(result, lay.out_perm)
    if plan.exact_int and dtype_kind(plan.compute) == "f":  # exact integers held in float64
        result = xp.astype(xp.round(result), xp.int64)
    return _materialize(xp, result, out_dtype)


@dataclass(eq=False)
class Layout:
    """Everything about one convolution that depends on its spec alone (shared
    between calls through :func:`layout`'s cache: never modified once made).

    Attributes
    ----------
    plan
        The accumulation and result dtypes (:class:`.dtypes.GemmDtypes`).
    groups, nb, cg, og, taps, rows
        Groups, batch per group, input and output channels per group, kernel
        taps, output rows (``nb`` times the output positions).
    empty
        True when every output element is an empty sum (zero).
    slots
        Per spatial axis, whether the input gets a zero slot at its end.
    length
        Length of the input's flattened middle axis (batch and positions).
    tap_chunk, row_chunk
        Chunk sizes, bounded by the workspace.  When the taps are not split,
        row chunks hold whole ``inner`` blocks of rows.
    out_perm
        Permutation from ``(N, *Y, O)`` to the output layout, None when the
        identity.
    """

    plan: GemmDtypes
    groups: int
    nb: int
    cg: int
    og: int
    taps: int
    rows: int
    empty: bool
    slots: tuple[bool, ...] = ()
    length: int = 0
    tap_chunk: int = 1
    row_chunk: int = 1
    out_perm: tuple[int, ...] | None = None
    window: tuple[int, ...] = ()
    out_spatial: tuple[int, ...] = ()
    plane: int = 1
    #: per axis, the flat offset ``T[y, k] * stride`` of the input element read (a zero slot for a zero)
    tables: tuple[np.ndarray, ...] = ()
    #: output axes past ``split`` are whole in every row chunk, and ``inner`` rows long together
    split: int = 0
    inner: int = 1
    index_dtype: type = np.int64
    cached: dict[tuple[int, int, int, int], np.ndarray] = field(default_factory=dict)

    def index(self, r0: int, r1: int, k0: int, k1: int) -> np.ndarray:
        """Flat input offsets of rows ``r0:r1`` and taps ``k0:k1``, row-major, as one 1-d array."""
        hit = self.cached.get((r0, r1, k0, k1))
        if hit is not None:
            return hit
        if k1 - k0 == self.taps and r0 % self.inner == 0 and r1 % self.inner == 0:
            flat = self._box(r0 // self.inner, r1 // self.inner)
        else:
            flat = self._gather(r0, r1, k0, k1)
        return flat.reshape(-1).astype(self.index_dtype, copy=False)

    def _box(self, o0: int, o1: int) -> np.ndarray:
        """All taps of the rows of outer blocks ``o0:o1``: the offsets as a sum of
        per-axis tables broadcast over ``(blocks, *Y[split:], *K)``."""
        j, n = self.split, len(self.window)
        outer = np.unravel_index(np.arange(o0, o1), (self.nb, *self.out_spatial[:j]))
        lead = outer[0] * self.plane
        tail = (1,) * n
        acc = lead.reshape(-1, *(1,) * (n - j), *tail)
        for i in range(j):  # outer axes: one row of the table per block
            shape = [1] * n
            shape[i] = self.window[i]
            acc = acc + self.tables[i][outer[i + 1]].reshape(-1, *(1,) * (n - j), *shape)
        flat = np.empty((o1 - o0, *self.out_spatial[j:], *self.window), dtype=np.int64)
        flat[...] = acc
        for i in range(j, n):  # inner axes: the whole table, broadcast
            shape = [1] * (1 + (n - j) + n)
            shape[1 + i - j] = self.out_spatial[i]
            shape[1 + (n - j) + i] = self.window[i]
            flat += self.tables[i].reshape(shape)
        return flat

    def _gather(self, r0: int, r1: int, k0: int, k1: int) -> np.ndarray:
        """Rows ``r0:r1`` and taps ``k0:k1``, one table lookup per axis."""
        pos = np.unravel_index(np.arange(r0, r1), (self.nb, *self.out_spatial))
        flat: np.ndarray = np.broadcast_to((pos[0] * self.plane)[:, None], (r1 - r0, k1 - k0)).copy()
        if self.window:
            taps = np.unravel_index(np.arange(k0, k1), self.window)
            for table, y, k in zip(self.tables, pos[1:], taps):
                flat += table[y[:, None], k[None, :]]
        return flat


@caching.memoize(128)
def layout(spec: ConvSpec, workspace_bytes: int = WORKSPACE_BYTES, available: frozenset[str] | None = None) -> Layout:
    """The :class:`Layout` of ``spec`` (cached: at most 128 layouts, each keeping
    at most :data:`CACHED_INDEX_ENTRIES` index entries)."""
    n = spec.nspatial
    p = canonical_problem(spec)
    groups, nb, cg, og = p.groups, p.batch, p.cg, p.og
    sizes, window, out_sp = p.sizes, p.window, p.out
    taps = p.taps
    rows = nb * math.prod(out_sp)
    plan = plan_dtypes(spec, taps * cg, available)
    empty = rows == 0 or og == 0 or taps * cg == 0 or 0 in sizes
    if empty:
        return Layout(plan, groups, nb, cg, og, taps, rows, empty)

    # per axis, T[y, k]: the input index output position y reads through tap k, `size` for a zero
    tables = [
        axis_table(s, y, k, st, ld, rd, lo)
        for s, y, k, st, ld, rd, (lo, _) in zip(
            sizes, out_sp, window, spec.window_strides, spec.lhs_dilation, spec.rhs_dilation, spec.padding
        )
    ]
    slots = tuple(bool(t.max() == s) for t, s in zip(tables, sizes))  # valid entries are below s
    extents = [s + slot for s, slot in zip(sizes, slots)]
    strides = [math.prod(extents[i + 1 :]) for i in range(n)]
    plane = math.prod(extents)

    per_tap_row = groups * cg * (dtype_bits(plan.compute) // 8) + 8  # window values plus one index
    tap_chunk = taps if taps * per_tap_row * MIN_ROWS <= workspace_bytes else max(
        1, workspace_bytes // (per_tap_row * MIN_ROWS)
    )
    row_chunk = max(1, min(rows, workspace_bytes // (tap_chunk * per_tap_row)))
    split, inner = n, 1
    if tap_chunk == taps:  # row chunks of whole blocks of the innermost output axes
        while split > 0 and inner * out_sp[split - 1] <= row_chunk:
            split -= 1
            inner *= out_sp[split]
        row_chunk = row_chunk // inner * inner

    canonical = (0, n + 1, *range(1, n + 1))  # N, O, spatial axes of (N, *Y, O)
    perm = [0] * (n + 2)
    for axis, src in zip(spec.dimension_numbers.out_spec, canonical):
        perm[axis] = src
    lay = Layout(
        plan, groups, nb, cg, og, taps, rows, empty, slots, nb * plane, tap_chunk, row_chunk,
        None if perm == sorted(perm) else tuple(perm), window, out_sp, plane,
        tuple(t if st == 1 else t * st for t, st in zip(tables, strides)), split, inner,
        np.int64 if available is None or "int64" in available else np.int32,
    )
    if rows * taps <= CACHED_INDEX_ENTRIES:
        for r0 in range(0, rows, row_chunk):
            for k0 in range(0, taps, tap_chunk):
                key = (r0, min(rows, r0 + row_chunk), k0, min(taps, k0 + tap_chunk))
                index = lay.index(*key)
                index.flags.writeable = False
                lay.cached[key] = index
    return lay


def _input_blocks(xp: Any, lhs: Any, spec: ConvSpec, lay: Layout, compute: Any, device: Any) -> Any:
    """The input as ``(G, length, cg)``: groups, then batch and positions with
    their zero slots, channels last."""
    dn = spec.dimension_numbers
    n = spec.nspatial
    sizes = spec.lhs_spatial
    groups, nb, cg = lay.groups, lay.nb, lay.cg
    x = xp.permute_dims(lhs, (dn.lhs_spec[0], *dn.lhs_spec[2:], dn.lhs_spec[1]))  # (N, *S, C): a view
    if spec.feature_group_count > 1:  # (N, *S, G, cg) -> (G, N, *S, cg)
        x = xp.reshape(x, (spec.batch, *sizes, groups, cg))
        x = xp.permute_dims(x, (n + 1, 0, *range(1, n + 1), n + 2))
    if not any(lay.slots):
        return xp.reshape(_materialize(xp, x, compute), (groups, lay.length, cg))
    if spec.feature_group_count == 1:  # batch groups are batch-major
        x = xp.reshape(x, (groups, nb, *sizes, cg))
    x = xp.astype(x, compute, copy=False)  # uint64 wraps to int64: the same sums modulo 2**64
    for i in reversed(range(n)):
        if lay.slots[i]:
            shape = list(x.shape)
            shape[2 + i] = 1
            x = xp.concat((x, xp.zeros(tuple(shape), dtype=compute, device=device)), axis=2 + i)
    return xp.reshape(x, (groups, lay.length, cg))


def _kernel_blocks(xp: Any, rhs: Any, spec: ConvSpec, lay: Layout, compute: Any) -> Any:
    """The kernel as ``(G, taps * cg, og)``, tap-major within each group's rows."""
    dn = spec.dimension_numbers
    w = xp.permute_dims(rhs, (*dn.rhs_spec[2:], dn.rhs_spec[1], dn.rhs_spec[0]))  # (*K, I, O)
    if lay.groups > 1:
        w = xp.permute_dims(xp.reshape(w, (lay.taps, lay.cg, lay.groups, lay.og)), (2, 0, 1, 3))
    return _materialize(xp, xp.reshape(w, (lay.groups, lay.taps * lay.cg, lay.og)), compute)


def _materialize(xp: Any, a: Any, dtype: Any) -> Any:
    """``a`` as ``dtype``: one C-contiguous copy where the namespace offers
    ``ascontiguousarray`` (NumPy, CuPy), else ``astype``."""
    contiguous = getattr(xp, "ascontiguousarray", None)
    if contiguous is not None:
        return contiguous(a, dtype=dtype)
    return xp.astype(a, dtype, copy=False)

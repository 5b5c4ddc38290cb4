"""Small convolutions: one precomputed gather and one matrix product, in a few microseconds.

For a small convolution the cost is the number of NumPy calls, not the
arithmetic.  Everything that depends on the spec alone is computed once: the
flat index, in the caller's own lhs array, of every element of every window
(or of one appended zero, for padding and the holes of lhs dilation).  A call
then appends the zero, gathers with that index, and makes one matrix product
with the kernel: four NumPy calls when the output layout allows.

Without groups the windows are ordered as the kernel's own memory (its
non-output axes, in the order they are laid out), so the kernel enters the
product as a reshape of itself, and the product is oriented by where the
kernel keeps its output axis: ``kernel (O, K) @ windows (K, rows)`` when it
comes first (``OI<spatial>``), ``windows (rows, K) @ kernel (K, O)`` when it
comes last (``<spatial>IO``).  An ``NC<spatial>`` output of one image, or a
channels-last output, is then the product itself, reshaped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from polyconv.spec import ConvSpec
from polyconv.spec.canonical import problem as canonical_problem

from ..gemm.windows import axis_table
from .views import input_view, kernel_view

__all__ = ["MAX_ELEMENTS", "runner"]

#: Gathered elements (``G * C_g * taps * N' * positions``) up to which a convolution counts as small.
MAX_ELEMENTS = 1 << 14


def _window_index(spec: ConvSpec) -> np.ndarray:
    """``index[g, c, *k, n, *y]``: the flat lhs index (``lhs.size`` for a zero) that
    output ``(n, g, *y)`` reads through tap ``k`` of channel ``c``."""
    p = canonical_problem(spec)
    n = spec.nspatial
    size = int(np.prod(spec.lhs_shape))
    canon = input_view(np.arange(size, dtype=np.intp).reshape(spec.lhs_shape), spec)  # (N', G, C_g, *S)
    canon = np.pad(canon, [(0, 0)] * 3 + [(0, 1)] * n, constant_values=size)  # one slot: the appended zero
    tables = [
        axis_table(s, y, k, st, ld, rd, lo)
        for s, y, k, st, ld, rd, (lo, _) in zip(spec.lhs_spatial, spec.out_spatial, spec.window, spec.window_strides,
                                                spec.lhs_dilation, spec.rhs_dilation, spec.padding)
    ]
    m = 3 + 2 * n  # (G, C_g, *K, N', *Y)

    def along(axis: int, values: np.ndarray) -> np.ndarray:
        return values.reshape([-1 if i == axis else 1 for i in range(m)])

    pos = [along(2 + n, np.arange(p.batch)), along(0, np.arange(p.groups)), along(1, np.arange(p.cg))]
    for axis, table in enumerate(tables):
        shape = [1] * m
        shape[2 + axis], shape[3 + n + axis] = table.shape[1], table.shape[0]
        pos.append(table.T.reshape(shape))
    index: np.ndarray = canon[tuple(pos)]
    return index


def runner(spec: ConvSpec, compute: np.dtype, out_dtype: np.dtype) -> Callable[[Any, Any], np.ndarray]:
    """``run(lhs, rhs)`` for a non-empty spec (any lhs dilation, padding, groups, layout)."""
    p = canonical_problem(spec)
    n = spec.nspatial
    dn = spec.dimension_numbers
    index = _window_index(spec)  # (G, C_g, *K, N', *Y)
    rows = p.batch * p.positions
    zero = np.zeros(1, compute)
    out_perm = [0] * (n + 2)
    for axis, src in enumerate(dn.out_spec):
        out_perm[src] = axis
    o_axis = dn.rhs_spec[0]
    if p.groups == 1 and o_axis in (0, len(spec.rhs_shape) - 1):
        # windows in the kernel's memory order: (C_g, *K) permuted as the rhs lays out I and its spatial axes
        rest = [a for a in range(len(spec.rhs_shape)) if a != o_axis]
        canonical_of = {dn.rhs_spec[1]: 0, **{a: 1 + i for i, a in enumerate(dn.rhs_spec[2:])}}
        order = [canonical_of[a] for a in rest]
        idx = index[0].transpose(*order, *range(1 + n, 2 + 2 * n)).reshape(-1, rows)
        if o_axis == 0:  # (O, K) @ (K, rows) -> (O, N', *Y)
            idx, kshape, first = np.ascontiguousarray(idx), (p.og, -1), True
            res_shape, perm = (p.og, p.batch, *p.out), (1, 0, *range(2, n + 2))
        else:  # (rows, K) @ (K, O) -> (N', *Y, O)
            idx, kshape, first = np.ascontiguousarray(idx.T), (-1, p.og), False
            res_shape, perm = (p.batch, *p.out, p.og), (0, n + 1, *range(1, n + 1))
        final = tuple(perm[a] for a in out_perm)  # result axes -> output layout
        identity = final == tuple(range(n + 2)) or (p.batch == 1 and final == (1, 0, *range(2, n + 2)))
        idx.flags.writeable = False

        def run(lhs: Any, rhs: Any) -> np.ndarray:
            windows = np.concatenate((lhs.reshape(-1), zero), dtype=compute)[idx]
            kernel = rhs.reshape(kshape)
            if kernel.dtype != compute:
                kernel = kernel.astype(compute)
            res = np.matmul(kernel, windows) if first else np.matmul(windows, kernel)
            if identity:
                res = res.reshape(spec.out_shape)
            else:
                res = res.reshape(res_shape).transpose(final)
            return res if res.dtype == out_dtype and res.flags.c_contiguous else np.ascontiguousarray(res, out_dtype)

        return run

    # groups, or a kernel with its output axis in the middle: batched over groups, canonical order
    gidx = np.ascontiguousarray(index.reshape(p.groups, p.cg * p.taps, rows))
    gidx.flags.writeable = False
    canonical_perm = tuple(out_perm)

    def run_grouped(lhs: Any, rhs: Any) -> np.ndarray:
        windows = np.concatenate((lhs.reshape(-1), zero), dtype=compute)[gidx]  # (G, C_g * taps, rows)
        kernel = kernel_view(rhs, spec).reshape(p.groups, p.og, p.cg * p.taps)
        if kernel.dtype != compute:
            kernel = kernel.astype(compute)
        res = np.matmul(kernel, windows).reshape(p.groups, p.og, p.batch, *p.out)  # (G, O_g, N', *Y)
        res = res.transpose(2, 0, 1, *range(3, n + 3)).reshape(p.batch, p.groups * p.og, *p.out)
        return np.ascontiguousarray(res.transpose(canonical_perm), out_dtype)

    return run_grouped

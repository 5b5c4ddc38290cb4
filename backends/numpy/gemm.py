"""Convolution as gathered matrix products, in bounded memory.

The input is laid out as ``(G, N, S_1 + 1, ..., S_n + 1, C_g)``: one block
per group (feature groups split the channels, batch groups split the batch),
channels last, and one zero slot at the end of each spatial axis.  The
kernel becomes ``(G, taps * C_g, O_g)``.  Output rows (batch times output
positions) are then processed in chunks: for a chunk of rows and a chunk of
kernel taps, one ``take`` gathers the windows into a ``(G, rows, taps * C_g)``
matrix (the per-axis tables of :mod:`.windows` fold strides, dilations,
padding and cropping into the gather), and one batched matrix product with
the kernel accumulates into the output.

Only a chunk of the windows matrix exists at any time; its size is bounded
by ``workspace_bytes`` (the tap chunk shrinks when a single row of windows
would not fit), so memory beyond the input copy and the output is bounded
whatever the convolution.

The functions take the array namespace ``xp`` so any NumPy-compatible
library with ``take`` and ``matmul`` can run them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from polyconv.spec import ConvSpec

from .dtypes import Plan, plan_dtypes
from .windows import axis_table

__all__ = ["conv_general_dilated", "WORKSPACE_BYTES"]

#: Upper bound on the windows matrix and its index array for one chunk.
WORKSPACE_BYTES = 32 << 20
#: Rows per chunk below which the tap axis is split instead.
MIN_ROWS = 256


def conv_general_dilated(xp: Any, lhs: Any, rhs: Any, spec: ConvSpec, workspace_bytes: int = WORKSPACE_BYTES) -> Any:
    """``conv_general_dilated`` of two ``xp`` arrays for a validated spec."""
    dn = spec.dimension_numbers
    n = spec.nspatial
    fgc, bgc = spec.feature_group_count, spec.batch_group_count
    groups = max(fgc, bgc)
    batch, c_in, c_out = spec.batch, spec.in_features, spec.out_features
    nb, cg, og = batch // bgc, c_in // fgc, c_out // groups
    sizes, window, out_sp = spec.lhs_spatial, spec.window, spec.out_spatial
    taps = math.prod(window)
    rows = nb * math.prod(out_sp)
    plan = plan_dtypes(spec, taps * cg)

    if rows == 0 or c_out == 0 or taps * cg == 0:
        return xp.zeros(spec.out_shape, dtype=plan.out)

    x = _input_blocks(xp, lhs, spec, groups, nb, cg, plan)  # (G, nb * P, cg)
    w = _kernel_blocks(xp, rhs, spec, groups, cg, og, taps, plan)  # (G, taps * cg, og)

    # flat offsets into x's middle axis: per-axis tables scaled by the axis stride
    extents = [s + 1 for s in sizes]
    strides = [math.prod(extents[i + 1 :]) for i in range(n)]
    tables = [
        axis_table(s, y, k, st, ld, rd, lo) * stride
        for s, y, k, st, ld, rd, (lo, _), stride in zip(
            sizes, out_sp, window, spec.window_strides, spec.lhs_dilation, spec.rhs_dilation,
            spec.padding, strides,
        )
    ]
    plane = math.prod(extents)

    item = np.dtype(plan.compute).itemsize
    per_tap_row = groups * cg * item + 8  # window values plus one index
    tap_chunk = taps if taps * per_tap_row * MIN_ROWS <= workspace_bytes else max(
        1, workspace_bytes // (per_tap_row * MIN_ROWS)
    )
    row_chunk = max(1, min(rows, workspace_bytes // (tap_chunk * per_tap_row)))

    out = xp.zeros((groups, rows, og), dtype=plan.compute)
    tap_index = np.unravel_index(np.arange(taps), window) if n else ()
    for r0 in range(0, rows, row_chunk):
        r1 = min(rows, r0 + row_chunk)
        pos = np.unravel_index(np.arange(r0, r1), (nb, *out_sp))
        base = (pos[0] * plane)[:, None]
        for k0 in range(0, taps, tap_chunk):
            k1 = min(taps, k0 + tap_chunk)
            flat = np.broadcast_to(base, (r1 - r0, k1 - k0)).copy()
            for table, y, k in zip(tables, pos[1:], tap_index):
                flat += table[y[:, None], k[None, k0:k1]]
            cols = xp.take(x, xp.asarray(flat), axis=1)  # (G, rows, taps, cg)
            cols = cols.reshape(groups, r1 - r0, (k1 - k0) * cg)
            part = xp.matmul(cols, w[:, k0 * cg : k1 * cg])
            if k0 == 0:
                out[:, r0:r1] = part
            else:
                out[:, r0:r1] += part

    # (G, nb * Y, og) -> (nb, *Y, G * og) -> output layout
    result = out.reshape(groups, nb, *out_sp, og)
    result = xp.moveaxis(result, 0, -2).reshape(nb, *out_sp, c_out)
    canonical = (0, n + 1, *range(1, n + 1))  # N, O, spatial axes of result
    perm = [0] * (n + 2)
    for axis, src in zip(dn.out_spec, canonical):
        perm[axis] = src
    return _finish(xp, result.transpose(perm), plan)


def _input_blocks(xp: Any, lhs: Any, spec: ConvSpec, groups: int, nb: int, cg: int, plan: Plan) -> Any:
    dn = spec.dimension_numbers
    x = lhs.transpose(dn.lhs_spec[0], *dn.lhs_spec[2:], dn.lhs_spec[1])  # (N, *S, C): a view
    sizes = spec.lhs_spatial
    if spec.feature_group_count > 1:
        x = xp.moveaxis(x.reshape(spec.batch, *sizes, groups, cg), -2, 0)
    else:
        x = x.reshape(groups, nb, *sizes, cg)
    if plan.exact_int and x.dtype == np.uint64:
        x = x.view(np.int64)  # same bits; arithmetic modulo 2**64 is unchanged
    blocks = xp.zeros((groups, nb, *(s + 1 for s in sizes), cg), dtype=plan.compute)
    blocks[(slice(None), slice(None), *(slice(0, s) for s in sizes))] = x
    return blocks.reshape(groups, nb * math.prod(s + 1 for s in sizes), cg)


def _kernel_blocks(xp: Any, rhs: Any, spec: ConvSpec, groups: int, cg: int, og: int, taps: int, plan: Plan) -> Any:
    dn = spec.dimension_numbers
    w = rhs.transpose(*dn.rhs_spec[2:], dn.rhs_spec[1], dn.rhs_spec[0])  # (*K, I, O)
    if plan.exact_int and w.dtype == np.uint64:
        w = w.view(np.int64)
    w = w.reshape(taps, cg, groups, og).transpose(2, 0, 1, 3)
    return xp.ascontiguousarray(w.reshape(groups, taps * cg, og), dtype=plan.compute)


def _finish(xp: Any, result: Any, plan: Plan) -> Any:
    if plan.exact_int:
        if result.dtype != np.int64:
            result = xp.rint(result).astype(np.int64)
        return xp.ascontiguousarray(result.astype(plan.out))
    return xp.ascontiguousarray(result, dtype=plan.out)

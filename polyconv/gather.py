"""``conv_general_dilated_patches`` as a gather: copies of input elements, no arithmetic.

Each element of a patch is one input element, or zero where the window reads
padding or a hole of the lhs dilation.  ``jax.lax`` computes patches as a
convolution with an identity kernel, which multiplies every neighbour of an
infinite or NaN input by zero and so turns it into NaN (``inf * 0``), and an FFT
would replace the copies by rounding noise; the reference copies, and so does
:func:`patches`, in any array-API namespace (NumPy, CuPy, PyTorch, JAX,
array-API libraries; the dask backend runs it on each block's chunk).  Where
arrays take item assignment it writes each tap's elements into a zeroed result
(one pass); JAX's, immutable and traced under ``jax.jit``, get the same values
from slicing, stacking and concatenation alone, one spatial axis at a time.

No padded copy of the input is ever made.  For each tap of the window and
each spatial axis, the outputs that read an input element form an
arithmetic progression, and so do the elements they read
(:func:`polyconv.spec.canonical.axis_reads`, in Python integers): a tap's
values are one strided slice of the input, spread out by zeros where the
progression skips outputs and bordered by zeros where it starts late or
ends early.  Memory stays bounded by the operand and the result whatever the
padding or dilations (a pad of ``2**62``, an lhs dilation of ``2**40``).

Examples
--------
>>> import numpy as np
>>> from polyconv.spec import patches_spec
>>> x = np.array([[[1.0, np.inf, 3.0]]])
>>> spec = patches_spec(x.shape, "float64", (2,), (1,), ((1, 0),))
>>> patches(x, spec)[0].tolist()  # the infinity is copied, its neighbours stay finite
[[0.0, 1.0, inf], [1.0, inf, 3.0]]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import array_api_compat

from .devices import device_of, on
from .spec import PatchesSpec
from .spec.canonical import TapReads, axis_reads
from .spec.dimension_numbers import inverse_permutation
from .spec.dtypes import namespace_dtype

__all__ = ["patches"]


def _axis_plans(size: int, outputs: int, window: int, stride: int, padding: tuple[int, int], lhs_dilation: int,
                rhs_dilation: int) -> list[TapReads | None]:
    """Per tap of one axis, in tap order, what its outputs read (``None``: nothing)."""
    reads = {r.tap: r for r in axis_reads(size, outputs, window, stride, lhs_dilation, rhs_dilation, padding[0])}
    return [reads.get(k) for k in range(window)]


def _zeros_along(xp: Any, like: Any, axis: int, n: int) -> Any:
    """Zeros of ``like``'s shape but ``n`` long along ``axis``, its dtype, on its device."""
    shape = list(like.shape)
    shape[axis] = n
    return xp.zeros(tuple(shape), dtype=like.dtype, **on(device_of(like)))


def _place(xp: Any, part: Any, axis: int, reads: TapReads, outputs: int) -> Any:
    """``part`` (``reads.count`` elements along ``axis``) spread to ``outputs``
    elements: from ``reads.out_start``, every ``reads.out_step``-th, zeros elsewhere."""
    step = reads.out_step
    if step > 1:  # interleave step - 1 zeros after each element, then trim (count > 1: step <= outputs)
        filler = _zeros_along(xp, part, axis, part.shape[axis])
        spread = xp.stack([part] + [filler] * (step - 1), axis=axis + 1)
        shape = list(part.shape)
        shape[axis] = reads.count * step
        part = xp.reshape(spread, tuple(shape))
        part = part[(slice(None),) * axis + (slice(0, (reads.count - 1) * step + 1),)]
    tail = outputs - reads.out_start - part.shape[axis]
    pieces = ([_zeros_along(xp, part, axis, reads.out_start)] if reads.out_start else []) + [part] + \
        ([_zeros_along(xp, part, axis, tail)] if tail else [])
    return pieces[0] if len(pieces) == 1 else xp.concat(pieces, axis=axis)


def patches(lhs: Any, spec: PatchesSpec) -> Any:
    """``conv_general_dilated_patches`` of ``lhs`` for the validated ``spec``,
    by copying (see the module's docstring); a new array, in ``lhs``'s
    namespace and on its device."""
    xp = array_api_compat.array_namespace(lhs)
    conv = spec.conv
    dn = conv.dimension_numbers
    dtype = namespace_dtype(xp, conv.out_dtype, lhs)
    canonical = tuple(conv.out_shape[a] for a in dn.out_spec)
    if 0 in canonical:
        empty = xp.zeros(canonical, dtype=dtype, **on(device_of(lhs)))
        return xp.permute_dims(empty, inverse_permutation(dn.out_spec))
    x = xp.permute_dims(lhs, dn.lhs_spec)  # (N, C, *S)
    out_spatial = canonical[2:]
    plans = [_axis_plans(*axis) for axis in zip(conv.lhs_spatial, out_spatial, spec.filter_shape,
                                                 conv.window_strides, conv.padding, conv.lhs_dilation,
                                                 conv.rhs_dilation)]
    if _assignable(lhs):
        out = _by_assignment(xp, x, list(itertools.product(*plans)), out_spatial, dtype)  # the taps, row-major
    else:
        out = _by_stacking(xp, x, plans, out_spatial)
    out = xp.reshape(out, canonical)  # (N, C, *K, *Y) -> (N, C * prod(K), *Y): channel-major
    if out.dtype != dtype:
        out = xp.astype(out, dtype)
    return xp.permute_dims(out, inverse_permutation(dn.out_spec))


def _assignable(x: Any) -> bool:
    """Whether ``x``'s arrays take item assignment (not JAX's, which are immutable)."""
    return not array_api_compat.is_jax_array(x)


def _out_slice(r: TapReads) -> slice:
    return slice(r.out_start, r.out_start + (r.count - 1) * r.out_step + 1, r.out_step)


def _in_slice(r: TapReads) -> slice:
    return slice(r.in_start, r.in_start + (r.count - 1) * r.in_step + 1, r.in_step)


def _by_assignment(xp: Any, x: Any, taps: Sequence[tuple[TapReads | None, ...]], out_spatial: tuple[int, ...],
                   dtype: Any) -> Any:
    """``(N, C, T, *Y)`` (``T`` the window's taps, row-major): zeros, each
    tap's elements written in place (one pass over the result)."""
    if x.dtype != dtype:
        x = xp.astype(x, dtype)
    out = xp.zeros((*x.shape[:2], len(taps), *out_spatial), dtype=dtype, **on(device_of(x)))
    everything = (slice(None), slice(None))
    for t, reads in enumerate(taps):
        if all(r is not None for r in reads):
            target = (*everything, t, *(_out_slice(r) for r in reads if r is not None))
            source = (*everything, *(_in_slice(r) for r in reads if r is not None))
            out[target] = x[source]
    return out


def _by_stacking(xp: Any, x: Any, plans: Sequence[Sequence[TapReads | None]], out_spatial: tuple[int, ...]) -> Any:
    """``(N, C, *K, *Y)`` without item assignment, one spatial axis at a time:
    each of the axis' taps is a strided slice spread and bordered by zeros
    (:func:`_place`), and the taps are stacked into a new window axis.  The
    operations number the sum of the window's sizes, not their product (62,
    not 961, for a 31x31 window), which keeps a traced program small."""
    if not plans:  # no spatial axes: the patches are the input, copied
        return xp.stack([x], axis=2)
    for a, (axis_plans, outputs) in enumerate(zip(plans, out_spatial)):
        axis = 2 + 2 * a  # (N, C, K_0..K_a-1, Y_0..Y_a-1, S_a, ...): this axis after the done ones
        pieces = []
        for reads in axis_plans:
            if reads is None:
                pieces.append(_zeros_along(xp, x, axis, outputs))
            else:
                part = x[(slice(None),) * axis + (_in_slice(reads),)]
                pieces.append(_place(xp, part, axis, reads, outputs))
        x = xp.stack(pieces, axis=2 + a)
    return x

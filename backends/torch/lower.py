"""Lowering a canonical convolution to PyTorch's own kernels.

The input arrives in canonical layout ``(N, C, *S)`` and the kernel as
``(O, I, *K)`` (views permuted from the caller's layout, so a channels-last
input stays channels-last in memory and PyTorch picks its channels-last
kernels).  From there:

* 1-3 spatial dims go to ``torch.nn.functional.conv{1,2,3}d``, with the
  symmetric part of the padding passed natively and the rest applied by one
  ``F.pad`` (which also crops, for negative pads);
* lhs dilation goes to ``conv_transpose{1,2,3}d`` with the kernel flipped and
  regrouped: the transposed convolution *is* the convolution of the dilated
  input, so no zeros are inserted; its symmetric crop is PyTorch's
  ``padding``, one high-side row can come from ``output_padding``, and the
  rest is one ``F.pad`` of the output;
* feature groups are ``groups``; batch groups fold the batch into channel
  groups (``(B * N', C) -> (N', B * C)``, ``groups=B``);
* 0 spatial dims become 1 spatial dim of size 1;
* more than 3 spatial dims are a sum, over the taps of the first spatial
  axis, of convolutions with one spatial dim fewer, with the output rows of
  that axis folded into the batch (strided views, one convolution per tap);
* parameters PyTorch cannot take as they are (a stride, dilation or pad past
  2**31, or a padded, dilated input far larger than the input and output,
  :func:`polyconv.spec.canonical.beyond_native`: a padding of 2**62
  cropped back, a dilation of 2**40) are computed tap by tap
  (:func:`_by_taps`): each kernel tap that reaches the input reads one strided
  slice of it (:func:`polyconv.spec.canonical.axis_reads`), multiplied by
  the tap's weights in one batched matrix product per group, and placed in
  the output with ``index_add``; nothing is sized by the padding, the strides
  or the dilations.

Every step is a differentiable PyTorch op, so autograd flows through all of
them, and nothing here branches on array values, so ``torch.compile``
traces it into one graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import product
from typing import Any

import torch
import torch.nn.functional as F

from polyconv.spec.canonical import axis_reads, beyond_native

__all__ = ["conv_canonical", "plan_canonical", "with_transposed_kernel", "pad", "needs_taps"]

Pads = Sequence[tuple[int, int]]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
#: Parameters up to this size never make the padded input large: no check of the shapes is needed.
_SMALL_PARAMETER = 1 << 10


def _pad_arg(pads: Pads) -> list[int]:
    """``F.pad``'s argument (last axis first) for per-spatial-axis ``(low, high)`` pairs."""
    out: list[int] = []
    for lo, hi in reversed(pads):
        out += [lo, hi]
    return out


def pad(x: Any, pads: Pads) -> Any:
    """Pad (positive) and crop (negative) the trailing spatial axes in one op."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    sizes = x.shape[x.dim() - len(pads):]
    if all(max(0, -lo) + max(0, -hi) <= s for (lo, hi), s in zip(pads, sizes)):
        return F.pad(x, _pad_arg(pads))
    # A crop past the edge removes padding of the other side too (as XLA's pad does):
    # pad first, then crop.
    x = F.pad(x, _pad_arg([(max(lo, 0), max(hi, 0)) for lo, hi in pads]))
    return F.pad(x, _pad_arg([(min(lo, 0), min(hi, 0)) for lo, hi in pads]))


def conv_canonical(
    x: Any,
    w: Any,
    strides: Sequence[int],
    padding: Pads,
    lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int],
    feature_groups: int,
    batch_groups: int,
) -> Any:
    """``(N, C, *S) x (O, I, *K) -> (N / B, O, *Y)``, for operands already in
    the computation dtype.  The output is never empty here (callers handle
    zero sizes)."""
    n = x.dim() - 2
    if n == 0:
        out = conv_canonical(x[..., None], w[..., None], (1,), ((0, 0),), (1,), (1,), feature_groups, batch_groups)
        return out[..., 0]
    groups = feature_groups
    if batch_groups > 1:
        b = batch_groups
        x = x.reshape(b, x.shape[0] // b, *x.shape[1:]).transpose(0, 1)
        x = x.reshape(x.shape[0], b * x.shape[2], *x.shape[3:])
        groups = b
    if needs_taps(x.shape[2:], w.shape[2:], strides, padding, lhs_dilation, rhs_dilation):
        return _by_taps(x, w, strides, padding, lhs_dilation, rhs_dilation, groups)
    if n > 3:
        return _by_first_axis(x, w, strides, padding, lhs_dilation, rhs_dilation, groups)
    if any(d != 1 for d in lhs_dilation):
        return _transposed(x, w, strides, padding, lhs_dilation, rhs_dilation, groups)
    return _native(n, tuple(strides), tuple(padding), tuple(rhs_dilation), groups)(x, w)


def plan_canonical(
    n: int,
    strides: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
    lhs_dilation: tuple[int, ...],
    rhs_dilation: tuple[int, ...],
    feature_groups: int,
    batch_groups: int,
) -> Callable[[Any, Any], Any]:
    """:func:`conv_canonical` for fixed parameters, as a function of the operands.

    The common case (1-3 spatial dims, no lhs dilation, no batch groups) is
    resolved here, once: the call is then one native convolution, preceded
    by one ``F.pad`` only when the padding is asymmetric or negative.
    """
    if (
        not 1 <= n <= 3 or batch_groups > 1 or any(d != 1 for d in lhs_dilation)
        or max((*strides, *rhs_dilation, *(abs(p) for pair in padding for p in pair)), default=0) > _SMALL_PARAMETER
    ):  # conv_canonical checks the shapes where the parameters may be too large for PyTorch
        def general(x: Any, w: Any) -> Any:
            return conv_canonical(x, w, strides, padding, lhs_dilation, rhs_dilation, feature_groups, batch_groups)

        return general
    return _native(n, strides, padding, rhs_dilation, feature_groups)


def _native(
    n: int, strides: tuple[int, ...], padding: tuple[tuple[int, int], ...], rhs_dilation: tuple[int, ...], groups: int,
) -> Callable[[Any, Any], Any]:
    """One native convolution (1-3 spatial dims, no lhs dilation), preceded by
    one ``F.pad`` only when the padding is asymmetric or negative."""
    conv = _CONV[n]
    native = tuple(max(0, min(lo, hi)) for lo, hi in padding)
    rest = [(lo - p, hi - p) for (lo, hi), p in zip(padding, native)]
    if any(lo or hi for lo, hi in rest):
        def padded(x: Any, w: Any) -> Any:
            return conv(pad(x, rest), w, None, strides, native, rhs_dilation, groups)

        return padded

    if all(v == 1 for v in (*strides, *rhs_dilation, groups)) and not any(native):
        def plain(x: Any, w: Any) -> Any:
            return conv(x, w)  # PyTorch's defaults: its argument parsing is cheapest without arguments

        return plain
    stride_arg, pad_arg, dilation_arg = (_compact(v) for v in (strides, native, rhs_dilation))

    def direct(x: Any, w: Any) -> Any:
        return conv(x, w, None, stride_arg, pad_arg, dilation_arg, groups)

    return direct


def _compact(values: tuple[int, ...]) -> int | tuple[int, ...]:
    """One int for equal per-axis values (PyTorch parses an int faster than a tuple).

    >>> _compact((2, 2)), _compact((1, 2))
    (2, (1, 2))
    """
    return values[0] if values and all(v == values[0] for v in values) else values


def with_transposed_kernel(
    run: Callable[[Any, Any], Any], n: int, strides: tuple[int, ...], padding: tuple[tuple[int, int], ...],
    lhs_dilation: tuple[int, ...], rhs_dilation: tuple[int, ...],
) -> Callable[[Any, Any], Any]:
    """``run`` (a planned convolution without groups) for the kernel as
    ``conv_transpose(..., transpose_kernel=True)`` takes it, in canonical order:
    ``(I, O, *K)`` of the forward convolution, not flipped, which is PyTorch's
    transposed-convolution weight as it is.  Where the convolution is lowered
    to ``conv_transpose*d``, that weight goes there untouched (no flip, no
    copy); elsewhere it is made the forward kernel first."""
    def forward(x: Any, w: Any) -> Any:
        return run(x, w.transpose(0, 1).flip(tuple(range(2, w.dim()))))

    if not 1 <= n <= 3 or all(d == 1 for d in lhs_dilation):
        return forward

    def native(x: Any, w: Any) -> Any:
        if needs_taps(x.shape[2:], w.shape[2:], strides, padding, lhs_dilation, rhs_dilation):
            return forward(x, w)
        return _transposed(x, w, strides, padding, lhs_dilation, rhs_dilation, 1, weight=True)

    return native


def _transposed(
    x: Any, w: Any, strides: Sequence[int], padding: Pads, lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int], groups: int, weight: bool = False,
) -> Any:
    """The convolution of the lhs-dilated input, as PyTorch's transposed convolution.
    ``weight``: ``w`` is already the transposed convolution's weight (groups 1)."""
    n = x.dim() - 2
    window = w.shape[2:]
    if weight:
        wt = w
    else:
        o, i = w.shape[0], w.shape[1]
        # (O, I, *K) -> (G, O/G, I, *K) -> (G, I, O/G, *K) -> (G * I, O/G, *K), spatially flipped
        wt = w.reshape(groups, o // groups, i, *window).transpose(1, 2).reshape(groups * i, o // groups, *window)
        wt = wt.flip(tuple(range(2, n + 2)))
    # The transposed convolution with no padding computes the dilated input padded by
    # K' - 1 on both sides (K' the dilated window); the wanted padding crops that.
    extent = [(k - 1) * d + 1 for k, d in zip(window, rhs_dilation)]
    crops = [(e - 1 - lo, e - 1 - hi) for e, (lo, hi) in zip(extent, padding)]
    native = [max(0, min(a, b)) for a, b in crops]
    rest = [(a - p, b - p) for (a, b), p in zip(crops, native)]
    # one missing high-side row per axis can be computed natively as output padding
    out_pad = [
        -b if b < 0 and -b < max(s, d) else 0 for (_, b), s, d in zip(rest, lhs_dilation, rhs_dilation)
    ]
    rest = [(a, b + op) for (a, b), op in zip(rest, out_pad)]
    out = _CONV_T[n](
        x, wt, stride=tuple(lhs_dilation), padding=tuple(native), output_padding=tuple(out_pad),
        groups=groups, dilation=tuple(rhs_dilation),
    )
    out = pad(out, [(-a, -b) for a, b in rest])
    if any(s != 1 for s in strides):  # strided and lhs-dilated at once: no native kernel does both
        strided = (slice(None), slice(None), *(slice(None, None, s) for s in strides))
        out = out[strided]
    return out


def _by_first_axis(
    x: Any, w: Any, strides: Sequence[int], padding: Pads, lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int], groups: int,
) -> Any:
    """n > 3 spatial dims: one (n-1)-dim convolution per tap of the first spatial axis."""
    s0, ld0, rd0, (lo, hi) = strides[0], lhs_dilation[0], rhs_dilation[0], padding[0]
    if ld0 > 1:  # no native kernel dilates a 4th axis: interleave zeros along it
        size = x.shape[2]
        zeros = x.new_zeros((*x.shape[:3], ld0 - 1, *x.shape[3:]))
        x = torch.cat((x.unsqueeze(3), zeros), dim=3).flatten(2, 3)
        x = x.narrow(2, 0, (size - 1) * ld0 + 1)
    x = pad(x, [(lo, hi)] + [(0, 0)] * (x.dim() - 3))
    k0 = w.shape[2]
    rows = (x.shape[2] - (k0 - 1) * rd0 - 1) // s0 + 1
    n, c = x.shape[0], x.shape[1]
    rest = x.shape[3:]
    out = None
    for k in range(k0):
        # rows y of the first axis read x[:, :, y * s0 + k * rd0]: a strided view, folded into the batch
        part = x.narrow(2, k * rd0, (rows - 1) * s0 + 1)[:, :, ::s0]
        part = part.transpose(1, 2).reshape(n * rows, c, *rest)
        y = conv_canonical(part, w[:, :, k], strides[1:], padding[1:], lhs_dilation[1:], rhs_dilation[1:], groups, 1)
        out = y if out is None else out + y
    assert out is not None
    return out.reshape(n, rows, *out.shape[1:]).transpose(1, 2)


def needs_taps(
    sizes: Sequence[int], window: Sequence[int], strides: Sequence[int], padding: Pads,
    lhs_dilation: Sequence[int], rhs_dilation: Sequence[int],
) -> bool:
    """Whether PyTorch's own convolutions cannot be given these parameters for
    an input of spatial sizes ``sizes`` and a kernel of ``window``
    (:func:`polyconv.spec.canonical.beyond_native`): :func:`conv_canonical`
    then computes the convolution tap by tap."""
    if max((*strides, *lhs_dilation, *rhs_dilation, *(abs(p) for pair in padding for p in pair)),
           default=0) <= _SMALL_PARAMETER:
        return False
    sizes, window = [int(s) for s in sizes], [int(k) for k in window]
    return beyond_native(sizes, window, _out_sizes(sizes, window, strides, padding, lhs_dilation, rhs_dilation),
                         strides, padding, lhs_dilation, rhs_dilation)


def _out_sizes(
    sizes: Sequence[int], window: Sequence[int], strides: Sequence[int], padding: Pads,
    lhs_dilation: Sequence[int], rhs_dilation: Sequence[int],
) -> list[int]:
    out = []
    for size, k, s, (lo, hi), ld, rd in zip(sizes, window, strides, padding, lhs_dilation, rhs_dilation):
        padded = (0 if size == 0 else (size - 1) * ld + 1) + lo + hi
        reach = (k - 1) * rd + 1
        out.append(0 if padded < reach else (padded - reach) // s + 1)
    return out


def _by_taps(
    x: Any, w: Any, strides: Sequence[int], padding: Pads, lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int], groups: int,
) -> Any:
    """``(N, C, *S) x (O, I, *K) -> (N, O, *Y)``, one batched matrix product per
    kernel tap that reaches the input.

    On each axis a tap reads the outputs ``y0 + m * P`` from the input elements
    ``i0 + m * s'`` (:func:`polyconv.spec.canonical.axis_reads`): a strided
    slice of the input, multiplied by the tap's ``(O, I)`` weights per group and
    spread over the output with ``index_add``.  Taps that only read padding or
    the holes of lhs dilation are skipped, and no tensor is larger than the
    output or the input, whatever the padding, strides and dilations."""
    sizes, window = [int(s) for s in x.shape[2:]], [int(k) for k in w.shape[2:]]
    out_sizes = _out_sizes(sizes, window, strides, padding, lhs_dilation, rhs_dilation)
    batch, channels, o = x.shape[0], x.shape[1], w.shape[0]
    per_axis = [
        axis_reads(size, y, k, s, ld, rd, lo)
        for size, y, k, s, ld, rd, (lo, _) in zip(sizes, out_sizes, window, strides, lhs_dilation, rhs_dilation,
                                                  padding)
    ]
    # (O, I, *K) -> (G, O / G, I, *K): the weights of one tap are w[..., k] as (G, O / G, I)
    wg = w.reshape(groups, o // groups, channels // groups, *window)
    out = None
    for reads in product(*per_axis):
        reading = (slice(None), slice(None), *(slice(r.in_start, r.in_stop, r.in_step) for r in reads))
        tap = (..., *(r.tap for r in reads))
        counts = [r.count for r in reads]
        # (N, C, *counts) -> (N, G, I, M) @ per group (O / G, I) -> (N, G, O / G, M) -> (N, O, *counts)
        part = torch.matmul(wg[tap], x[reading].reshape(batch, groups, channels // groups, -1))
        part = part.reshape(batch, o, *counts)
        for axis, (r, total) in enumerate(zip(reads, out_sizes)):
            if r.count == total:
                continue
            shape = list(part.shape)
            shape[2 + axis] = total
            index = torch.arange(r.out_start, r.out_stop, r.out_step, device=part.device)
            part = part.new_zeros(shape).index_add(2 + axis, index, part)
        out = part if out is None else out + part
    if out is None:  # no tap reaches the input: zeros, tied to the operands for autograd
        out = x.new_zeros((batch, o, *out_sizes))
        if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
            out = out + (x.reshape(-1)[:0].sum() + w.reshape(-1)[:0].sum())
    return out

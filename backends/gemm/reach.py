"""Which input elements the windows of one spatial axis reach, in exact integer arithmetic.

On one spatial axis with input size ``S``, lhs dilation ``D``, low padding
``lo``, stride ``s``, rhs dilation ``d``, ``K`` window taps and ``Y``
outputs, output ``y`` reads through tap ``k`` the padded position
``y*s + k*d``: input element ``i`` when ``y*s + k*d - lo == i*D`` with
``0 <= i < S``, a zero otherwise.  For one tap, the outputs that read input
elements are an arithmetic progression, and so are the elements they read:
with ``g = gcd(s, D)``, ``y`` steps by ``D / g`` and ``i`` by ``s / g``.
:func:`axis_reads` gives that progression for every tap that reads anything
(:class:`TapReads`).

Everything is Python integers and one step per tap: a padding of ``2**62``,
a dilation of ``2**40``, or values past int64 cost nothing, and nothing is
sized by the padding, the dilations or the strides, only by the window.  A
backend that cannot take such parameters as they are computes each tap's
progression as a strided slice of its input instead (the torch and JAX
backends), and the gather-GEMM's index tables (:mod:`.windows`) are filled
from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["TapReads", "axis_reads", "beyond_native", "NATIVE_LIMIT", "NATIVE_BLOWUP"]

#: The largest stride, dilation or pad that is passed to a framework's own convolution
#: (PyTorch's CPU kernels and cuDNN hold some of them in 32-bit integers).
NATIVE_LIMIT = 2**31 - 1
#: How much larger than the input and the output (per image and channel, plus a
#: million elements) the padded, dilated input of a framework's convolution may be.
NATIVE_BLOWUP = 16


@dataclass(frozen=True)
class TapReads:
    """The reads of one tap on one axis: outputs ``out_start + m * out_step``
    read input elements ``in_start + m * in_step``, for ``m < count``
    (``count >= 1``; both steps are 1 when ``count == 1``)."""

    tap: int
    out_start: int
    out_step: int
    in_start: int
    in_step: int
    count: int

    @property
    def out_stop(self) -> int:
        """One past the last output read (a slice's stop)."""
        return self.out_start + (self.count - 1) * self.out_step + 1

    @property
    def in_stop(self) -> int:
        """One past the last input element read (a slice's stop)."""
        return self.in_start + (self.count - 1) * self.in_step + 1


def axis_reads(
    size: int, out: int, window: int, stride: int, lhs_dilation: int, rhs_dilation: int, low: int
) -> tuple[TapReads, ...]:
    """The taps of one axis that read input elements, in tap order, and what they read.

    Examples
    --------
    >>> [(r.tap, r.out_start, r.in_start, r.count) for r in axis_reads(5, 5, 3, 1, 1, 1, 1)]
    [(0, 1, 0, 4), (1, 0, 0, 5), (2, 0, 1, 4)]
    >>> axis_reads(5, 5, 2, 1, 1, 2**40, 2**40)  # only the second tap reaches the input
    (TapReads(tap=1, out_start=0, out_step=1, in_start=0, in_step=1, count=5),)
    """
    if size <= 0 or out <= 0:
        return ()
    g = math.gcd(stride, lhs_dilation)
    period, in_step = lhs_dilation // g, stride // g
    inverse = pow(in_step, -1, period) if period > 1 else 0
    reads = []
    for k in range(window):
        c = k * rhs_dilation - low  # output y reads dilated position y * stride + c
        if c % g:
            continue  # never a multiple of the lhs dilation
        y = (-(c // g) * inverse) % period  # the first output on the lattice
        i = (y * stride + c) // lhs_dilation  # exact
        m0 = max(0, -(i // in_step))  # the first m with i + m * in_step >= 0
        m1 = min((out - 1 - y) // period, (size - 1 - i) // in_step)
        if m1 < m0:
            continue
        count = m1 - m0 + 1
        reads.append(TapReads(
            k, y + m0 * period, period if count > 1 else 1, i + m0 * in_step, in_step if count > 1 else 1, count,
        ))
    return tuple(reads)


def beyond_native(
    sizes: Sequence[int],
    window: Sequence[int],
    out: Sequence[int],
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int],
    rhs_dilation: Sequence[int],
) -> bool:
    """Whether a framework's own convolution should not be handed these parameters.

    True when a stride, a dilation or a pad exceeds :data:`NATIVE_LIMIT`, or
    when the input as the framework pads and dilates it (the dilated input,
    its positive padding, and for lhs dilation the window's reach on both
    sides, where a transposed convolution computes before cropping) holds
    more than :data:`NATIVE_BLOWUP` times the elements of the input and the
    output together, plus a million: parameters that are valid but whose
    padded input no window needs (a padding of ``2**40`` cropped back, a
    dilation of ``2**40``).  Such calls are computed tap by tap from
    :func:`axis_reads` instead, in memory bounded by the output and the
    operands.  All sizes per image and channel, in canonical order.
    """
    values = [*strides, *lhs_dilation, *rhs_dilation, *(abs(p) for pair in padding for p in pair)]
    if max(values, default=0) > NATIVE_LIMIT:
        return True
    extent = 1
    for size, k, ld, rd, (lo, hi) in zip(sizes, window, lhs_dilation, rhs_dilation, padding):
        dilated = 0 if size == 0 else (size - 1) * ld + 1
        reach = 2 * (k - 1) * rd if ld > 1 else 0
        extent *= dilated + max(lo, 0) + max(hi, 0) + reach
    return extent > NATIVE_BLOWUP * (math.prod(sizes) + math.prod(out)) + (1 << 20)

"""A convolution in canonical terms, and where its windows reach: pure integers, no arrays.

Every backend computes the same grouped form of a spec, whatever its
layouts: the input as ``(N', G, C_g, *S)`` (batch per batch group, groups,
channels per group, spatial sizes), the kernel as ``(G, O_g, C_g, *K)`` and
the output as ``(N', G, O_g, *Y)``.  Feature groups split the channels,
batch groups split the batch; ``G`` is whichever count exceeds 1
(``ConvSpec.groups``).  :class:`Problem` holds those sizes and the per-axis
geometry of a convolution without lhs dilation; :func:`problem` gives it for
a spec (the lhs dilation left to the caller: the NumPy backend splits it into
phases), :func:`stuffed_problem` for a spec whose input is zero-stuffed by
its lhs dilation first (the FFT path).

Which outputs read input elements, through which taps, is the other half:
:func:`axis_reads` gives, per spatial axis and tap, the arithmetic
progression of the outputs that read input elements and of the elements they
read; :func:`axis_reach` the ranges of taps and outputs that reach the input
at all (everything else reads padding or holes: zeros).  The NumPy strategies,
the FFT plan and the torch and JAX lowerings all take their geometry from
here.  Everything is Python integers, one step per tap: a padding of
``2**62`` or a dilation of ``2**40`` costs nothing.

Examples
--------
>>> from polyconv.spec import conv_spec
>>> spec = conv_spec((2, 8, 10, 10), (16, 4, 3, 3), "float32", "float32", (1, 1), "SAME",
...                  feature_group_count=2)
>>> problem(spec)
Problem(batch=2, groups=2, cg=4, og=8, sizes=(10, 10), window=(3, 3), out=(10, 10), strides=(1, 1), \
dilation=(1, 1), low=(1, 1))
>>> axis_reach(5, 5, 3, 1, 1, 1, 1)
AxisReach(taps=(0, 3), outputs=(0, 5), dead=())
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .conv import ConvSpec

__all__ = [
    "Problem", "problem", "stuffed_problem",
    "TapReads", "axis_reads", "AxisReach", "axis_reach",
    "beyond_native", "NATIVE_LIMIT", "NATIVE_BLOWUP",
]


@dataclass(frozen=True)
class Problem:
    """A convolution without lhs dilation, in canonical order (frozen and hashable: plans are cached on it).

    Attributes
    ----------
    batch, groups, cg, og
        ``N'`` (batch per batch group), groups ``G`` (feature or batch
        groups), input and output channels per group.
    sizes, window, out
        Input, kernel and output spatial sizes.
    strides, dilation
        Window strides and rhs (kernel) dilation per axis.
    low
        Low padding per axis (negative: cropping); the high padding is
        implied by ``out``.
    """

    batch: int
    groups: int
    cg: int
    og: int
    sizes: tuple[int, ...]
    window: tuple[int, ...]
    out: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    low: tuple[int, ...]

    @property
    def nspatial(self) -> int:
        """Number of spatial axes."""
        return len(self.sizes)

    @property
    def taps(self) -> int:
        """Kernel taps (product of the window)."""
        return math.prod(self.window)

    @property
    def positions(self) -> int:
        """Output positions per image and group (product of ``out``)."""
        return math.prod(self.out)

    @property
    def empty(self) -> bool:
        """True when every output element is an empty sum, or there is none."""
        return 0 in (self.batch, self.groups, self.og, self.cg, self.taps, self.positions, *self.sizes)

    def macs(self) -> int:
        """Multiply-adds of the direct computation (padding included)."""
        return self.batch * self.groups * self.og * self.cg * self.taps * self.positions


def problem(spec: ConvSpec) -> Problem:
    """The :class:`Problem` of ``spec``, ignoring its lhs dilation (the caller handles it)."""
    groups = spec.groups
    return Problem(
        batch=spec.batch // spec.batch_group_count,
        groups=groups,
        cg=spec.in_features // spec.feature_group_count,
        og=spec.out_features // groups,
        sizes=spec.lhs_spatial,
        window=spec.window,
        out=spec.out_spatial,
        strides=spec.window_strides,
        dilation=spec.rhs_dilation,
        low=tuple(lo for lo, _ in spec.padding),
    )


def stuffed_problem(spec: ConvSpec) -> Problem:
    """The :class:`Problem` of ``spec`` on its input zero-stuffed by the lhs dilation
    (``(S - 1) * D + 1`` per axis, the holes zeros of the operand)."""
    p = problem(spec)
    if all(d == 1 for d in spec.lhs_dilation):
        return p
    sizes = tuple((s - 1) * d + 1 for s, d in zip(spec.lhs_spatial, spec.lhs_dilation))
    return Problem(p.batch, p.groups, p.cg, p.og, sizes, p.window, p.out, p.strides, p.dilation, p.low)


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

    On an axis with input size ``S``, lhs dilation ``D``, low padding ``lo``,
    stride ``s``, rhs dilation ``d``, ``K`` taps and ``Y`` outputs, output
    ``y`` reads through tap ``k`` the padded position ``y*s + k*d``: input
    element ``i`` when ``y*s + k*d - lo == i*D`` with ``0 <= i < S``, a zero
    otherwise.  For one tap, the outputs that read input elements are an
    arithmetic progression, and so are the elements they read: with
    ``g = gcd(s, D)``, ``y`` steps by ``D / g`` and ``i`` by ``s / g``.

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


@dataclass(frozen=True)
class AxisReach:
    """What reaches the input on one axis.

    ``taps``: ``[k0, k1)``, from the first to the last tap that reads an
    input element for some output.  ``outputs``: ``[y0, y1)``, from the
    first to the last output that reads one.  ``dead``: the outputs inside
    ``[y0, y1)`` that read none (offsets from ``y0``; only without lhs
    dilation, where each tap's outputs are a contiguous range, and only
    where the kernel dilation can skip over the input)."""

    taps: tuple[int, int]
    outputs: tuple[int, int]
    dead: tuple[int, ...]


def axis_reach(
    size: int, out: int, window: int, stride: int, lhs_dilation: int, rhs_dilation: int, low: int
) -> AxisReach | None:
    """The :class:`AxisReach` of one axis, or None when no output reads the input.

    Examples
    --------
    >>> axis_reach(2, 7, 2, 1, 1, 4, 4)  # taps 4 apart over an input of 2: outputs 2 and 3 fall between
    AxisReach(taps=(0, 2), outputs=(0, 6), dead=(2, 3))
    """
    reads = axis_reads(size, out, window, stride, lhs_dilation, rhs_dilation, low)
    if not reads:
        return None
    y0, y1 = min(r.out_start for r in reads), max(r.out_stop for r in reads)
    dead: tuple[int, ...] = ()
    if lhs_dilation == 1 and rhs_dilation > 1 and len(reads) > 1:
        covered = [False] * (y1 - y0)
        for r in reads:  # without lhs dilation, one tap's outputs are a contiguous range
            covered[r.out_start - y0:r.out_stop - y0] = [True] * r.count
        dead = tuple(j for j, c in enumerate(covered) if not c)
    return AxisReach((reads[0].tap, reads[-1].tap + 1), (y0, y1), dead)


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

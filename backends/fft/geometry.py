"""What an FFT convolution transforms and keeps, from the spec alone.

A convolution without lhs dilation, in canonical terms (input
``(N', G, C_g, *S)``, kernel ``(G, O_g, C_g, *K)``, output
``(N', G, O_g, *Y)``), is computed per spatial axis as follows:

* only the *live* outputs are computed: those whose window reads at least
  one input element (the others are empty sums, exactly zero, and a
  transform would leave rounding noise there).  They form a hull
  ``[o0, o1)``; where the kernel dilation skips over a short input, some
  outputs inside the hull are dead too, and a mask zeroes them;
* the input slice ``[i0, i1)`` the live windows read is transformed at a
  length ``L`` of at least the span ``P = (o1 - o0 - 1) * stride +
  (K - 1) * dilation + 1`` of those windows (the next 2-3-5-smooth length):
  padding is the zeros the transform appends, cropping is the slice, and a
  circular convolution of that length wraps only into zeros;
* the kernel, dilated by zero-stuffing and flipped, is transformed at the
  same length, and the product's inverse transform holds output ``o`` at
  ``n0 + (o - o0) * stride``.

Everything is an integer computed once per spec, from the canonical problem
and its reach (:mod:`polyconv.spec.canonical`); :mod:`.transforms` does the
arithmetic.

>>> from polyconv.spec.canonical import Problem
>>> p = spectral_plan(Problem(1, 1, 1, 1, (10,), (3,), (10,), (1,), (1,), (1,)))
>>> p.axes[0].hull, p.axes[0].read, p.lengths
((0, 10), (0, 10), (12,))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from polyconv.spec.canonical import Problem, axis_reach

__all__ = ["AxisPlan", "SpectralPlan", "spectral_plan", "fast_length"]


def fast_length(n: int) -> int:
    """The smallest ``2**a * 3**b * 5**c`` that is at least ``n`` (fast for every FFT library).

    >>> [fast_length(n) for n in (1, 7, 17, 97, 1025)]
    [1, 8, 18, 100, 1080]
    """
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            q = p35
            while q < n:
                q *= 2
            best = min(best, q)
            p35 *= 3
        p5 *= 5
    return best


@dataclass(frozen=True)
class AxisPlan:
    """One spatial axis of an FFT convolution.

    Attributes
    ----------
    hull
        ``[o0, o1)``: the outputs computed (every output outside is an empty sum).
    dead
        Outputs inside the hull whose window reads no input (zeroed afterwards), as offsets from ``o0``.
    read
        ``[i0, i1)``: the input slice transformed.
    length
        The transform length ``L``.
    extent
        ``(K - 1) * dilation + 1``: the dilated kernel's length.
    first
        ``n0``: where output ``o0`` lies in the inverse transform; output
        ``o0 + j`` is at ``n0 + j * stride``.
    stride, dilation
        The window stride and the kernel dilation.
    """

    hull: tuple[int, int]
    dead: tuple[int, ...]
    read: tuple[int, int]
    length: int
    extent: int
    first: int
    stride: int
    dilation: int

    @property
    def live(self) -> int:
        """The number of outputs computed (``o1 - o0``)."""
        return self.hull[1] - self.hull[0]


def axis_plan(size: int, window: int, out: int, stride: int, dilation: int, low: int) -> AxisPlan | None:
    """The :class:`AxisPlan` of one axis, or None when no output reads the input."""
    extent = (window - 1) * dilation + 1
    reach = axis_reach(size, out, window, stride, 1, dilation, low)
    if reach is None:
        return None
    (o0, o1), dead = reach.outputs, reach.dead
    m_lo = o0 * stride - low  # the first input index the computed windows touch (may be negative)
    m_hi = (o1 - 1) * stride - low + extent - 1  # the last (may be past the end)
    i0, i1 = max(0, m_lo), min(size, m_hi + 1)
    span = m_hi - m_lo + 1
    first = m_lo - i0 + extent - 1
    return AxisPlan((o0, o1), dead, (i0, i1), fast_length(span), extent, first, stride, dilation)


@dataclass(frozen=True)
class SpectralPlan:
    """An FFT convolution in canonical terms (see the module docstring).

    Attributes
    ----------
    batch, groups, cg, og
        ``N'``, ``G``, ``C_g``, ``O_g``.
    window, out
        Kernel and output spatial sizes.
    axes
        One :class:`AxisPlan` per spatial axis.
    """

    batch: int
    groups: int
    cg: int
    og: int
    window: tuple[int, ...]
    out: tuple[int, ...]
    axes: tuple[AxisPlan, ...]

    @property
    def lengths(self) -> tuple[int, ...]:
        """The transform lengths."""
        return tuple(a.length for a in self.axes)

    def frequencies(self, real: bool) -> int:
        """Points of one transform: ``prod(L)``, the last axis halved plus one for real data."""
        if not self.axes:
            return 1
        *rest, last = self.lengths
        return math.prod(rest) * (last // 2 + 1 if real else last)

    def points(self) -> int:
        """``prod(L)``."""
        return math.prod(self.lengths)

    def macs(self) -> int:
        """Multiply-adds of the direct computation of the same outputs."""
        return self.batch * self.groups * self.og * self.cg * math.prod(self.window) * math.prod(self.out)


def spectral_plan(problem: Problem) -> SpectralPlan | None:
    """The :class:`SpectralPlan` of a convolution without lhs dilation (a
    canonical :class:`~polyconv.spec.canonical.Problem`), or None when there
    is nothing to transform: no spatial axis (a matrix product), or no output
    reading the input (the result is all zeros)."""
    if not problem.sizes:
        return None
    axes = []
    for args in zip(problem.sizes, problem.window, problem.out, problem.strides, problem.dilation, problem.low):
        a = axis_plan(*args)
        if a is None:
            return None
        axes.append(a)
    return SpectralPlan(problem.batch, problem.groups, problem.cg, problem.og, problem.window, problem.out,
                        tuple(axes))

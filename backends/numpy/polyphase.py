"""lhs dilation (transposed convolution) as plain convolutions: the polyphase decomposition.

With lhs dilation ``D`` most window elements are inserted zeros.  Split each
output axis into ``P = D / gcd(stride, D)`` phases, ``y = a + m*P``: on phase
``a`` only the taps ``k`` with ``a*stride + k*d - low`` a multiple of ``D``
read input elements, and they form an arithmetic progression
``k0, k0 + kstep, ...`` (``kstep = D / gcd(d, D)``).  Output ``a + m*P``,
tap ``k0 + j*kstep`` reads input element ``m*s' + j*d' + base`` with
``s' = stride / gcd(stride, D)``, ``d' = d / gcd(d, D)`` and
``base = (a*stride + k0*d - low) / D``: a plain convolution (no lhs
dilation) of the undilated input with the sub-kernel ``w[k0::kstep]``,
stride ``s'``, dilation ``d'`` and low padding ``-base``, whose outputs are
``y[a::P]``.  No product with an inserted zero is ever computed.  An output
phase that no tap reads is zero.

The phases that taps read are found in one step per tap, and parts are
made for them alone when there are many phases (see :func:`decompose`): a
huge lhs dilation, whose every output is a phase of its own, costs no more
than the kernel's taps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

from polyconv.spec.canonical import Problem

__all__ = ["Part", "decompose", "MAX_ZERO_PARTS"]


@dataclass(frozen=True)
class Part:
    """One output phase combination.

    Attributes
    ----------
    problem
        The plain convolution computing it, or None when it is all zeros.
    kernel
        Per spatial axis, the slice of the kernel it uses.
    out
        Per spatial axis, the slice of the output it fills.
    """

    problem: Problem | None
    kernel: tuple[slice, ...]
    out: tuple[slice, ...]


#: Output phase combinations up to which every phase that no tap reads is a part of its own.
MAX_ZERO_PARTS = 64

Sub = tuple[int, int, int, int, int]  # a phase's (taps, stride, dilation, low, outputs)


def _axis(size: int, window: int, stride: int, lhs_dilation: int, dilation: int, low: int, out: int) -> tuple[
        int, dict[int, tuple[slice, slice, Sub]]]:
    """The output phases of one axis: how many there are, and, for each phase
    that reads input elements, ``(output slice, kernel slice, sub-problem)``.

    Tap ``k`` reads input on phase ``a`` when ``a * stride + k * dilation - low``
    is a multiple of ``lhs_dilation``: one phase per tap ``k < kstep`` at most,
    so the phases read are found in one step per tap (never one per phase: a
    dilation of ``2**40`` has that many phases)."""
    g = math.gcd(stride, lhs_dilation)
    period, sub_stride = lhs_dilation // g, stride // g
    h = math.gcd(dilation, lhs_dilation)
    kstep, sub_dilation = lhs_dilation // h, dilation // h
    count = min(period, out)
    inverse = pow(sub_stride, -1, period) if period > 1 else 0
    phases: dict[int, tuple[slice, slice, Sub]] = {}
    for k0 in range(min(window, kstep)):  # distinct taps below kstep read distinct phases
        c = k0 * dilation - low
        if c % g:
            continue
        a = (-(c // g) * inverse) % period  # a * stride + c is a multiple of lhs_dilation
        if a >= count:
            continue
        outputs = (out - a + period - 1) // period
        taps = (window - k0 + kstep - 1) // kstep
        base = (a * stride + c) // lhs_dilation
        phases[a] = (
            slice(a, a + (outputs - 1) * period + 1, period if outputs > 1 else 1),
            slice(k0, k0 + (taps - 1) * kstep + 1, kstep if taps > 1 else 1),
            (taps, sub_stride, sub_dilation, -base, outputs),
        )
    return count, dict(sorted(phases.items()))


def _dead(a: int, period: int, out: int) -> tuple[slice, slice, None]:
    """Phase ``a``, which no tap reads."""
    outputs = (out - a + period - 1) // period
    return slice(a, a + (outputs - 1) * period + 1, period), slice(0, 0), None


def decompose(problem: Problem, lhs_dilation: tuple[int, ...]) -> list[Part]:
    """The parts of ``problem`` (its ``low`` and ``out`` taken on the dilated
    input) under lhs dilation ``lhs_dilation``.

    With at most :data:`MAX_ZERO_PARTS` phase combinations, each one is a
    part, in order (those no tap reads are zero parts); with more, and some
    that no tap reads, the first part zeroes the whole output and the others
    are the combinations that read input elements, so the parts never
    outnumber the kernel's taps (a huge lhs dilation makes every output a
    phase of its own, almost all of them zeros)."""
    axes = [
        _axis(*args)
        for args in zip(problem.sizes, problem.window, problem.strides, lhs_dilation, problem.dilation, problem.low,
                        problem.out)
    ]
    combos = math.prod(count for count, _ in axes)
    live = math.prod(len(phases) for _, phases in axes)
    lists: list[list[tuple[slice, slice, Sub | None]]]
    parts = []
    if live < combos and combos > MAX_ZERO_PARTS:
        n = problem.nspatial
        parts.append(Part(None, (slice(0, 0),) * n, (slice(None),) * n))
        lists = [list(phases.values()) for _, phases in axes]
    else:
        periods = [d // math.gcd(s, d) for s, d in zip(problem.strides, lhs_dilation)]
        lists = [
            [phases[a] if a in phases else _dead(a, period, out) for a in range(count)]
            for (count, phases), period, out in zip(axes, periods, problem.out)
        ]
    for combo in product(*lists):
        out = tuple(c[0] for c in combo)
        kernel = tuple(c[1] for c in combo)
        subs = [c[2] for c in combo if c[2] is not None]
        if len(subs) < len(combo):
            parts.append(Part(None, kernel, out))
            continue
        parts.append(Part(
            Problem(
                batch=problem.batch, groups=problem.groups, cg=problem.cg, og=problem.og, sizes=problem.sizes,
                window=tuple(s[0] for s in subs), out=tuple(s[4] for s in subs),
                strides=tuple(s[1] for s in subs), dilation=tuple(s[2] for s in subs), low=tuple(s[3] for s in subs),
            ),
            kernel, out,
        ))
    return parts

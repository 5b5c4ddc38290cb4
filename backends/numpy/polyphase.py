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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

from .problem import Problem

__all__ = ["Part", "decompose"]


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


def _axis(size: int, window: int, stride: int, lhs_dilation: int, dilation: int, low: int, out: int) -> list[
        tuple[slice, slice, tuple[int, int, int, int, int] | None]]:
    """Per output phase of one axis: ``(output slice, kernel slice, (taps, stride,
    dilation, low, outputs))``, the last None when the phase reads no input element."""
    g = math.gcd(stride, lhs_dilation)
    period, sub_stride = lhs_dilation // g, stride // g
    h = math.gcd(dilation, lhs_dilation)
    kstep, sub_dilation = lhs_dilation // h, dilation // h
    phases: list[tuple[slice, slice, tuple[int, int, int, int, int] | None]] = []
    for a in range(min(period, out)):
        outputs = (out - a + period - 1) // period
        out_slice = slice(a, a + (outputs - 1) * period + 1, period)
        k0 = next((k for k in range(min(window, kstep)) if (a * stride + k * dilation - low) % lhs_dilation == 0), None)
        if k0 is None:
            phases.append((out_slice, slice(0, 0), None))
            continue
        taps = (window - k0 + kstep - 1) // kstep
        base = (a * stride + k0 * dilation - low) // lhs_dilation
        phases.append((out_slice, slice(k0, k0 + (taps - 1) * kstep + 1, kstep),
                       (taps, sub_stride, sub_dilation, -base, outputs)))
    return phases


def decompose(problem: Problem, lhs_dilation: tuple[int, ...]) -> list[Part]:
    """The parts of ``problem`` (its ``low`` and ``out`` taken on the dilated
    input) under lhs dilation ``lhs_dilation``."""
    axes = [
        _axis(*args)
        for args in zip(problem.sizes, problem.window, problem.strides, lhs_dilation, problem.dilation, problem.low,
                        problem.out)
    ]
    parts = []
    for combo in product(*axes):
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

"""FFT ``conv_general_dilated`` of a whole spec on any namespace: the path of the torch and CuPy backends.

:func:`prepare` takes the FFT decision (:func:`.decision.decide`) once per
spec and mode (cached), on the spec's problem with its input zero-stuffed by
the lhs dilation; :func:`run` computes it for one call, or returns None when the
operands hold an infinity or NaN (the caller then runs its direct path).
The operands are permuted into canonical views (feature groups split the
channels, batch groups the batch), lhs dilation is applied by zero-stuffing
the input (the holes are zeros of the operand, so the nonzero-count
convolution of :func:`.transforms.convolve` keeps the outputs that read only holes
exactly zero), and the result is put back into the output layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from polyconv import caching
from polyconv.spec import ConvSpec
from polyconv.spec.canonical import stuffed_problem
from polyconv.spec.dimension_numbers import inverse_permutation

from .accuracy import finite, fits
from .decision import Decision, decide
from .geometry import SpectralPlan
from .transforms import convolve

__all__ = ["Prepared", "prepare", "decision", "run", "canonical_views"]


@dataclass(frozen=True)
class Prepared:
    """The FFT plan of one spec: the :class:`.geometry.SpectralPlan` and the images per transform."""

    spec: ConvSpec
    plan: SpectralPlan
    chunk: int
    complex_: bool
    checked: bool = True  # the error rule of .accuracy applies (auto); else only finiteness (always)


@caching.memoize(256)
def prepare(spec: ConvSpec, compute: str, mode: str, backend: str,
            direct_flops: float | None = None) -> Prepared | None:
    """The FFT plan of ``spec`` accumulated in ``compute`` on ``backend`` (whose
    calibration applies, or ``direct_flops`` for its direct path: :func:`.decision.decide`)
    in FFT ``mode``, or None where the direct path runs (cached, None included: most specs
    never go by FFT, and their calls ask every time)."""
    d = decision(spec, compute, mode, backend, direct_flops)
    if not d.use or d.plan is None:
        return None
    return Prepared(spec, d.plan, d.chunk, compute == "complex64", d.checked)


def decision(spec: ConvSpec, compute: str, mode: str, backend: str, direct_flops: float | None = None) -> Decision:
    """The FFT decision for the whole of ``spec`` (its input zero-stuffed by the lhs dilation)."""
    if mode == "never":  # the common answer, without planning
        return Decision(False, "FFT mode 'never'", mode)
    return decide(stuffed_problem(spec), compute, mode, backend, direct_flops=direct_flops)


def canonical_views(xp: Any, x: Any, rhs: Any, spec: ConvSpec, sp: SpectralPlan) -> tuple[Any, Any]:
    """The input ``(N', G, C_g, *S)`` from ``x`` ``(N, C, *S)`` (already stuffed by the
    lhs dilation: batch groups split the batch, feature groups the channels) and the
    kernel ``(G, O_g, C_g, *K)`` from ``rhs`` in its own layout, with ``xp``'s
    ``reshape`` and ``permute_dims`` (views where the layouts allow)."""
    n = spec.nspatial
    sizes = tuple(x.shape[2:])
    if spec.batch_group_count > 1:  # (B, N', C, *S) -> (N', B, C, *S)
        b = spec.batch_group_count
        x = xp.reshape(x, (b, spec.batch // b, spec.in_features, *sizes))
        x = xp.permute_dims(x, (1, 0, *range(2, n + 3)))
    else:
        x = xp.reshape(x, (spec.batch, sp.groups, sp.cg, *sizes))
    w = xp.permute_dims(rhs, spec.dimension_numbers.rhs_spec)  # (O, I, *K)
    return x, xp.reshape(w, (sp.groups, sp.og, *w.shape[1:]))


def run(xp: Any, lhs: Any, rhs: Any, p: Prepared, device: Any = None) -> Any:
    """The convolution of ``lhs`` and ``rhs`` (the caller's layouts) by FFT, in
    ``p.spec``'s output layout and dtype, or None where the direct path must
    run: an operand that is not finite, or (``auto`` mode) operands whose
    range breaks the error rule of :mod:`.accuracy`."""
    spec, sp = p.spec, p.plan
    if not p.checked and not finite(xp, lhs, rhs):
        return None
    dn = spec.dimension_numbers
    x = xp.permute_dims(lhs, dn.lhs_spec)  # (N, C, *S)
    if any(d != 1 for d in spec.lhs_dilation):
        dilated = tuple((s - 1) * d + 1 for s, d in zip(spec.lhs_spatial, spec.lhs_dilation))
        stuffed = xp.zeros((*x.shape[:2], *dilated), dtype=x.dtype, device=device)
        every = (slice(None), slice(None), *(slice(None, None, d) for d in spec.lhs_dilation))
        stuffed[every] = x
        x = stuffed
    x, w = canonical_views(xp, x, rhs, spec, sp)
    if p.checked and not fits(xp, x, w, sp, spec.out_dtype, p.chunk, device):
        return None
    transforms = xp.complex128 if p.complex_ else xp.float64
    hull = convolve(xp, x, w, sp, transforms, p.complex_, p.chunk, device)
    out_dtype = getattr(xp, spec.out_dtype)
    canonical_shape = (sp.batch, sp.groups, sp.og, *spec.out_spatial)
    if all(a.hull == (0, o) for a, o in zip(sp.axes, spec.out_spatial)):
        y = xp.astype(hull, out_dtype)
    else:
        y = xp.zeros(canonical_shape, dtype=out_dtype, device=device)
        y[(slice(None),) * 3 + tuple(slice(*a.hull) for a in sp.axes)] = xp.astype(hull, out_dtype)
    y = xp.reshape(y, (sp.batch, spec.out_features, *spec.out_spatial))
    return xp.permute_dims(y, inverse_permutation(dn.out_spec))

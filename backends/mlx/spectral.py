"""The MLX backend's FFT path: ``mx.fft`` on the plan of :mod:`polyconv.backends.fft`.

The decision is polyconv's one FFT decision
(:func:`polyconv.backends.fft.whole.decision` with the ``mlx`` backend's
rates), with one difference: MLX's transforms are single precision
(``mx.fft`` computes complex64, whatever the input; MLX has no complex128).
The ``auto`` mode's guarantee rests on float64 transforms, whose error
(``log2(prod(L)) * 2**-53`` of the problem's scale) stays below the direct
float32 sum's tolerance at every output (:mod:`polyconv.backends.fft.accuracy`);
a complex64 transform's is ``2**29`` times larger and does not, near small
outputs beside large ones in particular.  So ``auto`` never takes FFT here
(:func:`decision` says so, with the cost model's estimates), and
``use_fft('always')``, which trades accuracy for speed wherever the
transform is possible, takes it for finite operands: a call whose operands
hold an infinity or a NaN (which a transform would spread over the whole
result) runs the direct path, as does a call traced by ``mx.compile`` (whose
operands have no values to check yet).

The computation follows :mod:`polyconv.backends.fft.transforms` in
channels-last terms: the read slice of the input (zero-stuffed by the lhs
dilation first), the kernel zero-stuffed by its dilation and flipped, both
transformed at the plan's lengths (``mx.fft.rfftn``, ``fftn`` for complex),
one product per frequency and group, the inverse transform cut to the kept
outputs, the dead ones zeroed, and the live hull placed among zeros.
Gradients are the direct path's (:func:`.run.conv` gives every convolution
its VJP): the transforms' adjoints would put rounding noise where the direct
gradients are exact zeros.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import numpy as np

from polyconv.algorithm import fft_mode

from ..fft import whole
from ..fft.decision import Decision
from ..fft.transforms import dead_mask
from ._modules import TRACING, dtype
from .lower import ConvPlan, _fold_batch_groups, flip, stuff

__all__ = ["decision", "with_fft", "SINGLE_PRECISION"]

Array = Any
Run = Callable[..., Any]

#: Why ``auto`` does not take FFT on MLX.
SINGLE_PRECISION = ("MLX's transforms are single precision (complex64), which the auto mode's error rule "
                    "(float64 transforms) cannot meet; use_fft('always') takes them")


def _compute(p: ConvPlan) -> str | None:
    """The accumulation dtype an FFT of ``p`` would replace, or None where FFT never applies."""
    if p.path == "zeros" or p.dtypes.mode not in ("float", "complex"):
        return None
    return "complex64" if p.dtypes.mode == "complex" else "float32"


def decision(p: ConvPlan, mode: str) -> Decision | None:
    """The FFT decision for ``p`` in ``mode`` (see the module docstring), or
    None for a path FFT never replaces (zeros, float64, integers)."""
    compute = _compute(p)
    if compute is None:
        return None
    d = whole.decision(p.spec, compute, mode, "mlx")
    if d.use and mode == "auto":
        return dataclasses.replace(d, use=False, why=f"{SINGLE_PRECISION} ({d.why})", plan=None, chunk=0)
    return d


def _finite(*arrays: Array) -> bool | None:
    """Whether every element is finite; None while ``mx.compile`` traces (no values yet)."""
    try:
        return all(bool(mx.all(mx.isfinite(a)).item()) for a in arrays)
    except ValueError as exc:
        if TRACING in str(exc):
            return None
        raise


def with_fft(p: ConvPlan, direct: Run) -> Run | None:
    """The FFT runner of ``p`` in the current mode (falling back to ``direct``
    per call), or None where the direct path always runs."""
    compute = _compute(p)
    if compute is None or fft_mode() != "always":
        return None
    prepared = whole.prepare(p.spec, compute, "always", "mlx")
    if prepared is None:
        return None
    canonical = _canonical(p, prepared)
    lp, rp, op = p.lhs_perm, p.rhs_perm, p.out_perm

    def forward(lhs: Array, rhs: Array) -> Array:
        y = canonical(lhs if lp is None else mx.transpose(lhs, lp), rhs if rp is None else mx.transpose(rhs, rp))
        if y is None:
            return direct(lhs, rhs)
        return y if op is None else mx.transpose(y, op)

    return forward


def _canonical(p: ConvPlan, prepared: whole.Prepared) -> Callable[[Array, Array], Array | None]:
    """The FFT convolution of canonical ``(N, *S, C)`` and ``(O, *K, C_g)``
    operands as canonical ``(N', *Y, O)``, or None for non-finite operands."""
    spec, sp, chunk = p.spec, prepared.plan, prepared.chunk
    complex_ = prepared.complex_
    compute = dtype("complex64" if complex_ else "float32")
    out_dtype = dtype(spec.out_dtype)
    n = spec.nspatial
    axes = list(range(1, n + 1))
    lengths = tuple(sp.lengths)
    b = spec.batch_group_count
    g, cg, og = sp.groups, sp.cg, sp.og
    read = (slice(None), *(slice(*a.read) for a in sp.axes), slice(None))
    keep = (slice(None), *(slice(a.first, a.first + (a.live - 1) * a.stride + 1, a.stride) for a in sp.axes),
            slice(None))
    mask_np = dead_mask(np, sp, None)
    hull = [(0, 0), *((a.hull[0], y - a.hull[1]) for a, y in zip(sp.axes, spec.out_spatial)), (0, 0)]
    forward = mx.fft.fftn if complex_ else mx.fft.rfftn
    inverse = mx.fft.ifftn if complex_ else mx.fft.irfftn
    flipped = not p.flip  # correlation: the kernel flipped (a transposed kernel already is)

    def run(x: Array, w: Array) -> Array | None:
        if b > 1:
            x = _fold_batch_groups(x, b)
        if x.dtype != compute:
            x, w = x.astype(compute), w.astype(compute)
        ok = _finite(x, w)
        if not ok:
            return None
        for axis, d in enumerate(spec.lhs_dilation, start=1):
            x = stuff(x, axis, d)
        x = x[read]
        for axis, a in enumerate(sp.axes, start=1):
            w = stuff(w, axis, a.dilation)
        if flipped:
            w = flip(w, axes)
        kernel = forward(w, s=lengths, axes=axes)  # (O, *F, C_g)
        freq = kernel.shape[1:-1]
        points = 1
        for f in freq:
            points *= f
        if cg == 1:
            kernel = mx.moveaxis(kernel[..., 0], 0, -1).reshape(*freq, g, og)  # (*F, G, O_g)
        else:
            kernel = kernel.reshape(g, og, points, cg).transpose(0, 2, 3, 1)  # (G, F, C_g, O_g)
        mask = None if mask_np is None else mx.array(mask_np.reshape(1, *mask_np.shape, 1))
        pieces = []
        for start in range(0, sp.batch, chunk):
            spectrum = forward(x[start:start + chunk], s=lengths, axes=axes)  # (m, *F, C)
            m = spectrum.shape[0]
            if cg == 1:
                prod = spectrum.reshape(m, *freq, g, 1) * kernel  # (m, *F, G, O_g)
            else:
                prod = spectrum.reshape(m, points, g, cg).transpose(2, 1, 0, 3) @ kernel  # (G, F, m, O_g)
                prod = prod.transpose(2, 1, 0, 3)
            y = inverse(prod.reshape(m, *freq, g * og), s=lengths, axes=axes)[keep]  # (m, *live, O)
            pieces.append(y if mask is None else y * mask)
        y = pieces[0] if len(pieces) == 1 else mx.concatenate(pieces, axis=0)
        if any(h != (0, 0) for h in hull):
            y = mx.pad(y, hull)
        return y.astype(out_dtype)

    return run

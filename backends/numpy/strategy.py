"""Which algorithm computes a convolution on NumPy: one choice per spec, made once.

=============  ==============================================================
strategy       chosen for
=============  ==============================================================
``zeros``      nothing to add up (a zero-size axis, no taps, no channels)
``gemm``       every dtype plan other than floating/complex accumulation
               (integers, bool): the shared gather-GEMM of
               :mod:`polyconv.backends.gemm`, exact in int64/float64
``small``      small convolutions (:data:`.small.MAX_ELEMENTS`): one cached
               gather and one product (:mod:`.small`)
``polyphase``  lhs dilation: split into output phases, each one of the plain
               strategies below (:mod:`.polyphase`), which never read a hole
``pointwise``  1x1 windows that read no padding: one batched product on a
               view of the input (:mod:`.pointwise`)
``depthwise``  one input channel per group, at most four outputs each:
               elementwise multiply-adds over shifted slices
               (:mod:`.depthwise`)
``offsets``    everything else: matrix products on shifted slices of the
               padded, flattened phase planes (:mod:`.offsets`)
``fft``        large kernels accumulated in float32 or complex64, where the
               cost model finds it cheaper (every such call inside
               ``polyconv.use_fft("always")``):
               transforms of the live part of the input and of the kernel,
               a product per frequency (:mod:`polyconv.backends.fft`); a
               call with a non-finite operand runs the direct strategy
               instead.  With lhs dilation, each phase decides for itself.
=============  ==============================================================

Non-finite kernels follow the definition on every strategy: padding and the
holes of the lhs dilation form no products, as in ``jax.lax``.  The
strategies pad with zeros, and a zero times an infinite or NaN tap is NaN;
so for a spec whose windows reach padding or holes, each call sums its
kernel once (an infinity or NaN makes the sum one), and a kernel with such a
tap is computed by :mod:`.tapwise` instead (one product per tap, over the
outputs that tap reads input elements for).  Operands that are finite, or
specs that read only input elements, take the strategy as before.

A :class:`Choice` is cached per spec, with everything its strategy could work
out from the spec alone; :func:`runner` hands its function to polyconv's call
cache, so a repeated call goes straight to it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyconv import caching, calibration
from polyconv.algorithm import fft_mode
from polyconv.quiet import quiet
from polyconv.spec import ConvSpec, TransposeSpec, dtype_kind
from polyconv.spec.canonical import Problem
from polyconv.spec.canonical import problem as canonical_problem
from polyconv.spec.dtypes import numpy_dtype

from .. import fft, gemm
from . import depthwise, offsets, parallel, pointwise, polyphase, small, tapwise
from .views import input_view, kernel_view, output_view

__all__ = ["Choice", "choose", "convolve", "runner", "transpose_runner"]

Solver = Callable[[np.ndarray, np.ndarray, np.ndarray], None]

logger = logging.getLogger("polyconv")


@dataclass(frozen=True, eq=False)
class Choice:
    """The strategy of one spec.

    Attributes
    ----------
    name
        The strategy (see the module docstring).
    run
        ``run(lhs, rhs) -> result``.
    parts
        For ``polyphase``, the strategy of each output phase (``zeros`` for a
        phase no tap reads); otherwise ``(name,)``.
    why
        Why this strategy, in words (:func:`polyconv.explain` shows it).
    fft
        The FFT decisions taken (one per problem that took one: each phase's
        for ``polyphase``), for :func:`polyconv.explain`.
    """

    name: str
    run: Callable[[Any, Any], np.ndarray]
    parts: tuple[str, ...]
    why: str = ""
    fft: tuple[fft.Decision, ...] = ()


def convolve(lhs: Any, rhs: Any, spec: ConvSpec) -> np.ndarray:
    """``conv_general_dilated`` of two NumPy arrays for a validated spec (in the current FFT mode)."""
    return choose(spec, fft_mode()).run(lhs, rhs)


def runner(spec: ConvSpec) -> Callable[[Any, Any], np.ndarray]:
    """The function of the operands that computes ``spec`` in the current FFT
    mode (for polyconv's call cache, whose key holds the mode)."""
    return choose(spec, fft_mode()).run


def transpose_runner(tspec: TransposeSpec) -> Callable[[Any, Any], np.ndarray]:
    """``conv_transpose`` for one spec as a function of the operands: the
    forward convolution of ``tspec.conv``, the kernel flipped and its I and O
    axes swapped (views) first when ``transpose_kernel`` (as
    :func:`polyconv.derive.conv_transpose` does it)."""
    run = choose(tspec.conv, fft_mode()).run
    if not tspec.transpose_kernel:
        return run
    dn = tspec.conv.dimension_numbers
    flip = [slice(None)] * len(tspec.rhs_shape)
    for axis in dn.rhs_spec[2:]:
        flip[axis] = slice(None, None, -1)
    index = tuple(flip)
    perm = list(range(len(tspec.rhs_shape)))
    perm[dn.rhs_spec[0]], perm[dn.rhs_spec[1]] = dn.rhs_spec[1], dn.rhs_spec[0]

    def transposed(lhs: Any, rhs: Any) -> np.ndarray:
        return run(lhs, np.asarray(rhs)[index].transpose(perm))

    return transposed


@caching.memoize(256)
def choose(spec: ConvSpec, mode: str = "auto") -> Choice:
    """The :class:`Choice` for ``spec`` in FFT ``mode`` (cached: 256 specs and modes).

    Its function runs with NumPy's floating-point warnings off
    (:func:`polyconv.quiet.quiet`): non-finite operands form
    ``inf * 0`` by definition, silently, as on every other backend."""
    chosen = _choose(spec, mode)
    return Choice(chosen.name, quiet(chosen.run), chosen.parts, chosen.why, chosen.fft)


def _choose(spec: ConvSpec, mode: str) -> Choice:
    problem = canonical_problem(spec)
    plan = gemm.plan_dtypes(spec, problem.cg * problem.taps)
    out_dtype = numpy_dtype(plan.out)

    if problem.empty:
        def zeros(lhs: Any, rhs: Any) -> np.ndarray:
            return np.zeros(spec.out_shape, out_dtype)

        return Choice("zeros", zeros, ("zeros",), "nothing to add up (a zero-size axis, no taps or no channels)")

    if plan.exact_int or dtype_kind(plan.compute) not in "fc":
        def general(lhs: Any, rhs: Any) -> np.ndarray:
            out: np.ndarray = gemm.conv_general_dilated(np, np.asarray(lhs), np.asarray(rhs), spec)
            return out

        return Choice("gemm", general, ("gemm",),
                      f"exact sums of {spec.dtype} operands: the gather-GEMM in {plan.compute}")

    compute = numpy_dtype(plan.compute)
    gathered = problem.groups * problem.cg * problem.taps * problem.batch * problem.positions
    if gathered <= small.MAX_ELEMENTS and mode != "always":
        return Choice("small", _by_definition(spec, small.runner(spec, compute, out_dtype), compute, out_dtype),
                      ("small",), f"small: {gathered} gathered elements, at most {small.MAX_ELEMENTS}")

    if any(d != 1 for d in spec.lhs_dilation):
        parts = polyphase.decompose(problem, spec.lhs_dilation)
        solvers = [(None if p.problem is None else _solver(p.problem, compute, mode, out_dtype.name), p)
                   for p in parts]
        names = tuple("zeros" if s is None else s[0] for s, _ in solvers)
        decisions = tuple(s[2] for s, _ in solvers if s is not None and s[2] is not None)

        def phases(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> None:
            for solver, part in solvers:
                out_index = (slice(None), slice(None), slice(None), *part.out)
                y_part = y[out_index]
                if solver is None:
                    y_part[...] = 0
                else:
                    kernel_index = (slice(None), slice(None), slice(None), *part.kernel)
                    solver[1](x, w[kernel_index], y_part)

        return Choice("polyphase", _by_definition(spec, _direct(spec, phases, out_dtype), compute, out_dtype), names,
                      f"lhs dilation: one problem per output phase ({', '.join(names)})", decisions)

    name, solve, decision = _solver(problem, compute, mode, out_dtype.name)
    if decision is None:
        why = name
    elif name == "fft":
        why = decision.why
    else:
        why = f"{_DIRECT_WHY.get(name, name)}; not FFT: {decision.why}"
    return Choice(name, _by_definition(spec, _direct(spec, solve, out_dtype), compute, out_dtype), (name,), why,
                  () if decision is None else (decision,))


def _by_definition(spec: ConvSpec, run: Callable[[Any, Any], np.ndarray], compute: np.dtype,
                   out_dtype: np.dtype) -> Callable[[Any, Any], np.ndarray]:
    """``run``, except for a kernel with an infinite or NaN tap on a spec whose
    windows reach padding or holes: then :mod:`.tapwise`, which forms no
    product with them (the strategies' padding zeros would make ``0 * inf``).
    The kernel is checked by one sum per call, only for such specs (an
    infinity or NaN makes the sum one)."""
    if not tapwise.reaches_outside(spec):
        return run
    exact = tapwise.runner(spec, compute, out_dtype)
    dot, reduce, isfinite = np.dot, np.add.reduce, math.isfinite

    def checked(lhs: Any, rhs: Any) -> np.ndarray:
        rhs = np.asarray(rhs)
        if rhs.dtype in _BLAS_FLOATS:  # the sum of squares: one BLAS call (an overflow only costs the exact path)
            flat = rhs.reshape(-1)
            finite = isfinite(dot(flat, flat))
        else:
            finite = bool(np.isfinite(reduce(rhs, axis=None, dtype=compute)))
        return run(lhs, rhs) if finite else exact(lhs, rhs)

    return checked


_BLAS_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

#: Why each direct strategy of :func:`_direct_solver` applies.
_DIRECT_WHY = {
    "pointwise": "1x1 windows that read no padding: one product on a view of the input",
    "depthwise": "one input channel per group, at most four outputs each: shifted multiply-adds",
    "offsets": "matrix products on shifted slices of the padded phase planes",
}


def _direct(spec: ConvSpec, solve: Solver, out_dtype: np.dtype) -> Callable[[Any, Any], np.ndarray]:
    """``run(lhs, rhs)``: the result allocated in the output layout, filled by ``solve`` through canonical views."""

    def run(lhs: Any, rhs: Any) -> np.ndarray:
        lhs, rhs = np.asarray(lhs), np.asarray(rhs)
        out = np.empty(spec.out_shape, out_dtype)
        solve(input_view(lhs, spec), kernel_view(rhs, spec), output_view(out, spec))
        return out

    return run


#: Outputs per group from which the ``offsets`` strategy's products run at the dense rate of the
#: cost model; below, the FFT decision takes that rate times ``og / FULL_RATE_OUTPUTS``: the
#: outputs of a group are the products' columns, and BLAS runs few columns at a fraction of its
#: rate.  Measured on 4 images of 96x96 with 3 input channels, 5x5 to 15x15 kernels, on the
#: 2-core Intel VM of ``docs/performance.md``: 4.0-4.8 GFLOP/s for one output, 9-14 for four,
#: 19-27 for eight, 34-38 for sixteen, 50-59 for 32 (16 input channels: 10-15, 20-24, 35-49,
#: 57-84, 81-114).
FULL_RATE_OUTPUTS = 16


def _direct_flops(name: str, problem: Problem) -> float | None:
    """The rate of the direct strategy ``name`` for the FFT decision where the cost model's
    classes overstate it (see :data:`FULL_RATE_OUTPUTS`), else None.

    >>> few = Problem(4, 1, 3, 1, (128, 128), (15, 15), (128, 128), (1, 1), (1, 1), (7, 7))
    >>> _direct_flops("offsets", few) == calibration.constants("numpy").direct_flops / 16
    True
    >>> _direct_flops("offsets", Problem(4, 1, 3, 16, (128, 128), (15, 15), (128, 128), (1, 1), (1, 1), (7, 7)))
    """
    if name != "offsets" or problem.og >= FULL_RATE_OUTPUTS or fft.depthwise_class(problem.cg, problem.og):
        return None  # the dense rate, or the depthwise class's own rates
    return calibration.constants("numpy").direct_flops * problem.og / FULL_RATE_OUTPUTS


def _solver(problem: Problem, compute: np.dtype, mode: str = "never",
            out: str = "float32") -> tuple[str, Solver, fft.Decision | None]:
    """The strategy for a problem without lhs dilation, and its function ``solve(x, w, y)`` of canonical views:
    FFT where the one FFT decision (:func:`polyconv.backends.fft.decide`) takes it, else a direct one.
    Each call by FFT first checks its operands: in ``auto`` mode the error rule of
    :mod:`polyconv.backends.fft.accuracy` (for a result of dtype ``out``), in ``always`` mode only that
    they are finite; a call that fails runs directly.  Also the FFT decision (None for an empty problem)."""
    if problem.empty:
        def zero(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> None:
            y[...] = 0

        return "zeros", zero, None
    name, direct = _direct_solver(problem, compute)
    decision = fft.decide(problem, compute.name, mode, "numpy", direct_flops=_direct_flops(name, problem))
    if not decision.use or decision.plan is None:
        return name, direct, decision
    sp, chunk = decision.plan, decision.chunk
    complex_ = compute.kind == "c"
    transforms = np.dtype(np.complex128 if complex_ else np.float64)
    hull = (slice(None),) * 3 + tuple(slice(*a.hull) for a in sp.axes)
    whole = hull[3:] == tuple(slice(0, n) for n in problem.out)

    checked = decision.checked

    def spectral(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> None:
        threads = parallel.threads()
        part = _threaded_chunk(chunk, sp.batch, threads)
        if not (fft.fits(np, x, w, sp, out, part, run=_run_chunks, split=threads) if checked
                else fft.finite(np, x, w)):
            logger.debug("numpy fft: %s; this call runs %s", "the operands' range breaks the FFT error rule"
                         if checked else "an operand holds an infinity or NaN", name)
            direct(x, w, y)  # wide-range operands (auto), or an infinity or NaN, which a transform would spread
            return
        if not whole:
            y[...] = 0
        y[hull] = fft.convolve(np, x, w, sp, transforms, complex_, part, run=_run_chunks, split=threads)

    return "fft", spectral, decision


def _run_chunks(work: Callable[[int], None], indices: Any) -> None:
    parallel.run_chunks(work, indices, min_chunks=1)


def _threaded_chunk(chunk: int, batch: int, threads: int) -> int:
    """The images per transform when the batch's chunks go on ``threads``
    threads (NumPy's transforms release the GIL): a part of ``chunk`` (the
    most that fits the workspace), so that every thread gets a chunk and the
    chunks in flight together still fit; ``chunk`` itself when it is smaller
    than ``threads`` images (then its chunks run one after the other).

    >>> _threaded_chunk(4, 4, 2), _threaded_chunk(8, 8, 2), _threaded_chunk(3, 8, 2), _threaded_chunk(1, 8, 2)
    (2, 4, 1, 1)
    """
    if threads < 2 or chunk < threads or batch < 2:
        return chunk
    return max(1, min(chunk // threads, -(-batch // threads)))


def _direct_solver(problem: Problem, compute: np.dtype) -> tuple[str, Solver]:
    """The direct strategy for a non-empty problem without lhs dilation."""
    if pointwise.applies(problem):
        def direct(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> None:
            if not pointwise.run(problem, x, w, y, compute, max_copy=offsets.WORKSPACE_BYTES):
                offsets.run(offsets.plan(problem, compute.itemsize), x, w, y, compute)  # chunked instead

        return "pointwise", direct
    if depthwise.applies(problem):
        dp = depthwise.plan(problem, compute.itemsize)

        def dw(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> None:
            depthwise.run(dp, x, w, y, compute)

        return "depthwise", dw
    offsets_plan = offsets.plan(problem, compute.itemsize)

    def shifted(x: np.ndarray, w: np.ndarray, y: np.ndarray) -> None:
        offsets.run(offsets_plan, x, w, y, compute)

    return "offsets", shifted

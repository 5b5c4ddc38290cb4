"""Large kernels by FFT on the JAX backend: the one FFT decision, its error rule, inside ``jit``.

XLA computes every convolution directly, whatever the kernel's size: 2.6 s
for a depthwise 31x31 convolution that the NumPy backend's FFT path does in
52 ms.  The JAX backend takes the FFT decision of every backend
(:mod:`polyconv.backends.fft.decision`, mode from :func:`polyconv.use_fft`,
read when the call is traced) and, where it says FFT, computes the
convolution with ``jnp.fft`` on its spectral plan:

* the operands in canonical views (feature groups split the channels,
  batch groups the batch; the lhs dilation by ``lax.pad``'s interior
  padding), converted to float64 (complex128): the transforms run in double
  precision, as on every backend, which is what makes the error rule hold;
  JAX without ``jax_enable_x64`` computes them inside ``jax.enable_x64``,
  the result leaving it in the operands' dtype (releases without that
  public context, such as JAX 0.5, take the FFT path with x64 on only:
  :func:`available`);
* the read slice of the input and the dilated, flipped kernel transformed
  at the plan's lengths (``rfftn``, or ``fftn`` for complex operands), one
  product per frequency and group (a broadcast product for one channel per
  group), the inverse transform, and the kept outputs sliced out at the
  stride and padded back to the output's size.

**The error rule under jit.**  ``use_fft('auto')`` takes FFT only for
operands whose range the transform's rounding does not break
(:mod:`polyconv.backends.fft.accuracy`); under ``jit`` the operands have no
values when the choice is made, so the rule is computed with the
convolution, as array operations, and ``lax.cond`` runs the direct path
(the lowering the spec takes otherwise) only where it fails:

1. the cheap bound: the kernel's smallest magnitude times a lower bound of
   each window's sum of the input's magnitudes (the sum over a sparse grid
   of the window's elements, by running sums in float64, less their
   rounding bound), at every output; it needs a kernel without zero taps
   and without dilation, and every window reading a nonzero input, and then
   every output has a nonzero product: nothing to zero;
2. where (1) falls short, the magnitudes themselves, the float64 FFT
   convolution of ``|x|`` and ``|w|``, and the count of nonzero products,
   that of the operands' nonzero indicators: outputs with none are set to
   exact zeros, as a direct sum leaves them, and every other output must
   meet the bound;
3. where (2) fails too, or an operand is not finite, the direct path.

An eager call (concrete operands) branches in Python instead, so only one
path is compiled.  ``use_fft('always')`` checks finiteness only, as on
every backend, and zeroes the outputs that a dilated kernel skips over.

**Autodiff.**  The convolution is a ``jax.custom_vjp`` whose backward pass
is the two transposed convolutions of XLA's rules
(:func:`polyconv.derive.vjp_lhs`, :func:`polyconv.derive.vjp_rhs`), each
through the JAX backend again, so each takes the FFT decision for its own
spec (a large kernel's input gradient is a large-kernel convolution too),
and second derivatives go the same way.  ``jax.linear_transpose`` of such a
convolution is not available (JAX does not transpose custom rules), and
under ``vmap`` a batched ``lax.cond`` becomes a select: both paths run.

**Memory.**  The whole batch is transformed at once; specs whose transforms
of one batch do not fit the decision's workspace (where the NumPy backend
would take the batch in chunks) stay on the direct path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from polyconv.backends.fft import whole
from polyconv.backends.fft.accuracy import KAPPA, TINY, U32, U64
from polyconv.backends.fft.decision import Decision
from polyconv.backends.fft.geometry import SpectralPlan

from polyconv import derive
from polyconv.algorithm import fft_mode
from polyconv.calibration import constants
from polyconv.spec import ConvSpec, vjp_lhs_plan, vjp_rhs_plan
from polyconv.spec.dimension_numbers import inverse_permutation

from . import cpu_lowering
from ._lowering import jax_modules

__all__ = ["available", "compute_dtype", "fft_runner", "prepared"]

Run = Callable[..., Any]

_FLOATS = ("float16", "bfloat16", "float32")


def compute_dtype(spec: ConvSpec) -> str | None:
    """What ``spec``'s products add up in, where FFT can apply (``'float32'``
    or ``'complex64'``, the accumulations the float64 transforms meet), else None.

    >>> from polyconv.spec import conv_spec
    >>> compute_dtype(conv_spec((1, 1, 64), (1, 1, 15), "float32", "float32", (1,), "SAME"))
    'float32'
    >>> compute_dtype(conv_spec((1, 1, 64), (1, 1, 15), "float64", "float64", (1,), "SAME")) is None
    True
    """
    if spec.dtype in _FLOATS and spec.out_dtype in _FLOATS:
        return "float32"
    if spec.dtype == "complex64" and spec.out_dtype == "complex64":
        return "complex64"
    return None


def available() -> bool:
    """Whether this JAX can compute the float64 transforms: with ``jax_enable_x64`` on,
    or inside the public ``jax.enable_x64`` context of recent releases.  JAX 0.5's
    ``jax.experimental.enable_x64`` inside ``jit`` lowers to invalid IR (a 64-bit index
    passed where the 32-bit one is expected), so older releases without x64 keep the
    direct path."""
    jax = jax_modules()[0]
    return bool(jax.config.jax_enable_x64) or hasattr(jax, "enable_x64")


def _direct_flops(spec: ConvSpec) -> float | None:
    """The rate of the direct path of ``spec`` for the FFT decision, where the backend's rates'
    classes do not describe it (:func:`.cpu_lowering.xla_flops`), else None."""
    return cpu_lowering.xla_flops(spec, jax_modules()[0].default_backend(), constants("jax").direct_flops)


def decision(spec: ConvSpec, compute: str, mode: str) -> Decision:
    """The FFT decision of ``spec`` accumulated in ``compute`` on the JAX backend in ``mode``
    (the one :func:`prepared` takes, which :func:`polyconv.explain` shows)."""
    return whole.decision(spec, compute, mode, "jax", _direct_flops(spec))


def prepared(spec: ConvSpec, mode: str) -> whole.Prepared | None:
    """The FFT plan ``spec`` takes on the JAX backend in ``mode``, or None (the direct path)."""
    compute = compute_dtype(spec)
    if compute is None or mode == "never" or not available():
        return None
    p = whole.prepare(spec, compute, mode, "jax", _direct_flops(spec))
    if p is None or p.chunk < p.plan.batch:  # the whole batch at once, within the workspace
        return None
    return p


def fft_runner(spec: ConvSpec, direct: Run, be: Any) -> Run | None:
    """``fn(lhs, rhs)``: ``spec`` by FFT where the decision says so when it is
    called (or traced), else ``direct``; None where FFT can never apply (the
    dtype, no spatial axis, nothing read), so that the caller keeps ``direct``.
    ``be`` is the JAX backend (the backward pass's convolutions)."""
    compute = compute_dtype(spec)
    if compute is None or whole.decision(spec, compute, "always", "jax").plan is None:
        return None
    built: dict[whole.Prepared, Run] = {}
    # the decision per mode and x64 setting, kept here: asking prepared() again hashes the spec
    # (4.4 us of a repeated eager call); the runner itself is cached per spec and cleared with
    # every cache (polyconv.caching.clear)
    decided: dict[tuple[str, bool], whole.Prepared | None] = {}
    config = jax_modules()[0].config

    def run(lhs: Any, rhs: Any) -> Any:
        key = (fft_mode(), config.jax_enable_x64)
        try:
            p = decided[key]
        except KeyError:
            p = decided[key] = prepared(spec, key[0])
        if p is None:
            return direct(lhs, rhs)
        fn = built.get(p)
        if fn is None:
            fn = built[p] = _differentiable(spec, p, direct, be)
        return fn(lhs, rhs)

    return run


def _differentiable(spec: ConvSpec, p: whole.Prepared, direct: Run, be: Any) -> Run:
    """The FFT convolution (or the direct one where the rule fails) with the
    backward pass of the two transposed convolutions (see the module docstring)."""
    jax, _, _ = jax_modules()
    lhs_plan, rhs_plan = vjp_lhs_plan(spec), vjp_rhs_plan(spec)
    backward = _Backward(be, p.checked)

    @jax.custom_vjp  # type: ignore[untyped-decorator]
    def conv(lhs: Any, rhs: Any) -> Any:
        return _forward(spec, p, direct, lhs, rhs)

    def conv_fwd(lhs: Any, rhs: Any) -> tuple[Any, tuple[Any, Any]]:
        # conv itself, not its body: differentiated again (second order), the forward rule must
        # meet only custom rules, never the 64-bit transforms (JAX transposes those in 32 bits)
        return conv(lhs, rhs), (lhs, rhs)

    def conv_bwd(residuals: tuple[Any, Any], cotangent: Any) -> tuple[Any, Any]:
        lhs, rhs = residuals
        return (derive.vjp_lhs(backward, rhs, cotangent, lhs_plan, lhs.dtype),  # type: ignore[arg-type]
                derive.vjp_rhs(backward, lhs, rhs, cotangent, rhs_plan, rhs.dtype))  # type: ignore[arg-type]

    conv.defvjp(conv_fwd, conv_bwd)
    return conv  # type: ignore[no-any-return]


class _Backward:
    """The JAX backend as a backward pass through an FFT convolution sees it: each
    transposed convolution by FFT wherever its spec can be (the error rule still
    checked per call where the forward one's was), without the cost model.

    The cost model prices the direct path at one rate per kind of convolution,
    and XLA:CPU's rate for the kernel cotangent of a large kernel (a
    convolution with batch groups and a window as large as the output) is a
    tenth of its rate on the forward one or less (7.3 s against 2.4 s on the
    benchmark's 31x31 depthwise convolution): the backward convolutions have
    the forward one's multiply-adds and transforms of its sizes, so where the
    forward one goes by FFT, they do too."""

    def __init__(self, be: Any, checked: bool) -> None:
        self.be, self.checked = be, checked
        self.runs: dict[ConvSpec, Run] = {}

    def conv_general_dilated(self, lhs: Any, rhs: Any, spec: ConvSpec) -> Any:
        run = self.runs.get(spec)
        if run is None:
            run = self.runs[spec] = self._run(spec)
        return run(lhs, rhs)

    def _run(self, spec: ConvSpec) -> Run:
        p = None if self.be.beyond_xla(spec) else prepared(spec, "always")
        if p is None:
            return lambda lhs, rhs: self.be.conv_general_dilated(lhs, rhs, spec)
        return _differentiable(spec, dataclasses.replace(p, checked=self.checked), self.be.direct(spec), self.be)


def _branch(pred: Any, if_true: Callable[[], Any], if_false: Callable[[], Any]) -> Any:
    """``lax.cond`` under a trace; a Python ``if`` on a concrete predicate (one
    path computed, and compiled, per eager call)."""
    jax, lax, _ = jax_modules()
    if isinstance(pred, jax.core.Tracer):
        # in 64 bits: vmap turns a batched cond into both branches and a select, evaluating
        # the branches' 64-bit operations again, here (the result is in the operands' dtype)
        with _x64(jax):
            return lax.cond(pred, if_true, if_false)
    return if_true() if bool(pred) else if_false()


def _forward(spec: ConvSpec, p: whole.Prepared, direct: Run, lhs: Any, rhs: Any) -> Any:
    """FFT where the rule holds, else ``direct``: each path computed inside its
    branch, so that only the one taken runs (see the module docstring)."""
    jax, _, jnp = jax_modules()
    sp = p.plan
    by_fft = lambda: _by_fft(spec, sp, p.complex_, lhs, rhs)  # noqa: E731
    by_direct = lambda: direct(lhs, rhs)  # noqa: E731
    if not p.checked:  # use_fft('always'): finiteness only
        return _branch(jnp.logical_and(jnp.all(jnp.isfinite(lhs)), jnp.all(jnp.isfinite(rhs))), by_fft, by_direct)

    def exact() -> Any:  # stage 2: the magnitudes and the nonzero products, output by output
        with _x64(jax):
            ok, count = _rule(spec, sp, lhs, rhs)
        return _branch(ok, lambda: _by_fft(spec, sp, p.complex_, lhs, rhs, count), by_direct)

    with _x64(jax):
        cheap = _cheap_rule(spec, sp, lhs, rhs)
    if cheap is False:  # stage 1 cannot apply to this spec
        return exact()
    return _branch(cheap, by_fft, exact)


def _x64(jax: Any) -> Any:
    """A context in which JAX computes in 64 bits: none needed with ``jax_enable_x64``
    on, else ``jax.enable_x64`` (:func:`available`)."""
    if jax.config.jax_enable_x64:
        return contextlib.nullcontext()
    return jax.enable_x64(True)


def _by_fft(spec: ConvSpec, sp: SpectralPlan, complex_: bool, lhs: Any, rhs: Any, count: Any = None) -> Any:
    """The FFT convolution in ``spec``'s output layout and dtype; outputs whose
    ``count`` of nonzero products is zero, or that a dilated kernel skips
    over, are exact zeros."""
    jax, lax, jnp = jax_modules()
    with _x64(jax):
        wide = jnp.complex128 if complex_ else jnp.float64
        x, w = _canonical(spec, sp, lax.convert_element_type(lhs, wide), lax.convert_element_type(rhs, wide))
        hull = _convolve(sp, x, w, complex_)
        if count is not None:
            hull = jnp.where(count > 0.5, hull, jnp.zeros((), hull.dtype))
        else:
            mask = _dead_mask(sp)
            if mask is not None:
                hull = hull * jnp.asarray(mask, dtype=jnp.float64)
        return _placed(spec, sp, hull)


def _canonical(spec: ConvSpec, sp: SpectralPlan, lhs: Any, rhs: Any) -> tuple[Any, Any]:
    """Input ``(N', G, C_g, *S)`` (zero-stuffed by the lhs dilation) and kernel ``(G, O_g, C_g, *K)``."""
    _, lax, jnp = jax_modules()
    dn = spec.dimension_numbers
    x = lax.transpose(lhs, dn.lhs_spec)  # (N, C, *S)
    if any(d != 1 for d in spec.lhs_dilation):
        x = lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (0, 0, 0), *((0, 0, d - 1) for d in spec.lhs_dilation)])
    return whole.canonical_views(jnp, x, rhs, spec, sp)


def _convolve(sp: SpectralPlan, x: Any, w: Any, complex_: bool) -> Any:
    """The live hull ``(N', G, O_g, *live)`` of the convolution of canonical ``x`` and ``w``."""
    _, lax, jnp = jax_modules()
    n = len(sp.axes)
    spatial = tuple(range(3, 3 + n))
    lengths = sp.lengths
    xr = _read(sp, x)
    if any(a.dilation != 1 for a in sp.axes):
        w = lax.pad(w, jnp.zeros((), w.dtype), [(0, 0, 0)] * 3 + [(0, 0, a.dilation - 1) for a in sp.axes])
    w = lax.rev(w, spatial)
    if complex_:
        fx, fw = jnp.fft.fftn(xr, lengths, spatial), jnp.fft.fftn(w, lengths, spatial)
    else:
        fx, fw = jnp.fft.rfftn(xr, lengths, spatial), jnp.fft.rfftn(w, lengths, spatial)
    if sp.cg == 1:  # (N', G, 1, *F) * (G, O_g, 1, *F): depthwise, a broadcast product
        fy = fx * jnp.reshape(fw, (1, sp.groups, sp.og, *fw.shape[3:]))
    else:
        fy = jnp.einsum("ngc...,goc...->ngo...", fx, fw)
    y = jnp.fft.ifftn(fy, lengths, spatial) if complex_ else jnp.fft.irfftn(fy, lengths, spatial)
    start = (0, 0, 0, *(a.first for a in sp.axes))
    limit = (*y.shape[:3], *(a.first + (a.live - 1) * a.stride + 1 for a in sp.axes))
    return lax.slice(y, start, limit, (1, 1, 1, *(a.stride for a in sp.axes)))


def _dead_mask(sp: SpectralPlan) -> np.ndarray | None:
    """Ones over the hull, zeros at the outputs a dilated kernel skips over (None: no such output)."""
    if not any(a.dead for a in sp.axes):
        return None
    mask = np.ones((), np.float64)
    for a in sp.axes:
        line = np.ones(a.live)
        line[list(a.dead)] = 0.0
        mask = np.multiply.outer(mask, line)
    return mask


def _placed(spec: ConvSpec, sp: SpectralPlan, hull: Any) -> Any:
    """The hull padded to the whole output, in the output's layout and dtype."""
    _, lax, jnp = jax_modules()
    out_dtype = jnp.dtype(spec.out_dtype)
    y = lax.convert_element_type(hull, out_dtype)
    config = [(0, 0, 0)] * 3 + [(a.hull[0], o - a.hull[1], 0) for a, o in zip(sp.axes, spec.out_spatial)]
    if any(lo or hi for lo, hi, _ in config):
        y = lax.pad(y, jnp.zeros((), out_dtype), config)
    y = lax.reshape(y, (sp.batch, spec.out_features, *spec.out_spatial))
    return lax.transpose(y, tuple(inverse_permutation(spec.dimension_numbers.out_spec)))


def _read(sp: SpectralPlan, x: Any) -> Any:
    """The slice of canonical ``x`` that the plan transforms (what the windows read)."""
    lax = jax_modules()[1]
    return lax.slice(x, (0, 0, 0, *(a.read[0] for a in sp.axes)), (*x.shape[:3], *(a.read[1] for a in sp.axes)))


def _exact_operands(spec: ConvSpec, sp: SpectralPlan, lhs: Any, rhs: Any) -> tuple[Any, Any, Any, Any]:
    """What both stages of the rule start from: the canonical ``x`` and ``w`` in a
    dtype whose magnitudes are exact (complex64 widened: its ``|z|`` would round;
    real operands as they are), ``|x|`` over the read slice, and ``|w|`` in float64."""
    _, lax, jnp = jax_modules()
    if jnp.iscomplexobj(lhs):
        lhs, rhs = lax.convert_element_type(lhs, jnp.complex128), lax.convert_element_type(rhs, jnp.complex128)
    x, w = _canonical(spec, sp, lhs, rhs)
    return x, w, jnp.abs(_read(sp, x)), lax.convert_element_type(jnp.abs(w), jnp.float64)


def _error(sp: SpectralPlan, read: Any, b: Any, out_dtype: str) -> tuple[Any, Any, float, float]:
    """``(E, finite, coef, tiny)``: the transform's error bound per ``(N', G, O_g)``
    from the input's magnitudes over the read slice ``read`` and the kernel's
    magnitudes ``b`` (float64), whether both are finite, and the bound's factors."""
    _, lax, jnp = jax_modules()
    spatial = tuple(range(3, 3 + len(sp.axes)))
    peak = lax.convert_element_type(jnp.max(read, axis=spatial), jnp.float64)  # (N', G, C_g): NaN and inf stay
    finite = jnp.logical_and(jnp.all(jnp.isfinite(peak)), jnp.all(jnp.isfinite(b)))
    n = math.prod(hi - lo for lo, hi in (a.read for a in sp.axes))
    kernel_norm = jnp.sqrt(jnp.sum(b * b, axis=spatial))  # (G, O_g, C_g)
    size = jnp.sum(peak[:, :, None, :] * kernel_norm[None], axis=3) * math.sqrt(n)  # R: (N', G, O_g)
    error = KAPPA * math.log2(max(sp.points(), 2)) * U64 * size
    coef = 4.0 * math.sqrt(sp.cg * math.prod(sp.window)) * U32
    return error, finite, coef, TINY.get(out_dtype, 1.2e-38)


def _cheap_rule(spec: ConvSpec, sp: SpectralPlan, lhs: Any, rhs: Any) -> Any:
    """Stage 1 (see the module docstring): True where it proves the rule and every
    output has a nonzero product, else False (then stage 2 decides); a constant
    False where it cannot apply (a dilated kernel, a window without grid points)."""
    _, _, jnp = jax_modules()
    _, _, read, b = _exact_operands(spec, sp, lhs, rhs)
    least = _least_window_sums(sp, read)
    if least is None:
        return False
    error, finite, coef, tiny = _error(sp, read, b, spec.out_dtype)
    floor = jnp.max((error - tiny) / coef, axis=2)  # (N', G): every output's M_j must reach this
    smallest = jnp.min(jnp.reshape(b, (sp.groups, -1)), axis=1)  # (G,)
    cheap = jnp.logical_and(finite, jnp.logical_and(jnp.all(smallest > 0), jnp.all(least > 0)))
    return jnp.logical_and(cheap, jnp.all(smallest[None, :] * least >= floor))


def _rule(spec: ConvSpec, sp: SpectralPlan, lhs: Any, rhs: Any) -> tuple[Any, Any]:
    """Stage 2 (see the module docstring): ``(ok, count)``, whether every output
    with a nonzero product meets the bound, and the count of those products."""
    _, lax, jnp = jax_modules()
    x, w, read, b = _exact_operands(spec, sp, lhs, rhs)
    error, finite, coef, tiny = _error(sp, read, b, spec.out_dtype)
    expand = (*error.shape, *(1,) * len(sp.axes))
    ax = lax.convert_element_type(jnp.abs(x), jnp.float64)
    magnitude = _convolve(sp, ax, b, False) - jnp.reshape(error, expand)  # M_j >= computed - E
    count = _convolve(sp, (x != 0).astype(jnp.float64), (w != 0).astype(jnp.float64), False)
    short = magnitude * coef + tiny < jnp.reshape(error, expand)
    return jnp.logical_and(finite, jnp.logical_not(jnp.any(jnp.logical_and(short, count > 0.5)))), count


def _least_window_sums(sp: SpectralPlan, ax: Any) -> Any | None:
    """``(N', G)``: a lower bound of every output window's sum of ``|x|`` (over the
    group's channels), from a sparse grid: every ``r``-th input element on each
    axis (``r`` an eighth of the window, or up to 3 for windows of 8 to 23
    taps, as the NumPy backend's rule takes it), summed under each window by
    running sums in float64, less their rounding bound (XLA's running sums
    and gathers cost about 20 ns an element on the CPU: the grid keeps them
    a ninth of the input or less, and runs of windows share one sum).  None
    for a dilated kernel (its window is not a box) or where some window holds
    no grid point."""
    _, lax, jnp = jax_modules()
    if any(a.dilation != 1 for a in sp.axes):
        return None
    steps = [max(1, a.extent // 8, min(3, a.extent // 4)) for a in sp.axes]
    indices = []
    for a, r in zip(sp.axes, steps):
        size = a.read[1] - a.read[0]
        starts = np.arange(a.live) * a.stride - (a.extent - 1 - a.first)  # window j's first tap, read coordinates
        first = -(-np.clip(starts, 0, size) // r)  # the first grid point of the window
        stop = -(-np.clip(starts + a.extent, 0, size) // r)  # one past its last
        # Consecutive windows share most of their grid points: for a run of windows moving half a
        # window in all, the points common to all of them bound each one's sum from below, and the
        # gathers below shrink from one sum per output to one per run (they cost like the output).
        run = max(1, a.extent // (2 * a.stride))
        ends = np.minimum(np.arange(run - 1, a.live + run - 1, run), a.live - 1)
        if bool(np.all(stop[::run] > first[ends])):
            first, stop = first[ends], stop[::run]
        if bool(np.any(stop <= first)):
            return None
        change = np.ones(len(first), dtype=bool)  # equal ranges are summed once
        change[1:] = (first[1:] != first[:-1]) | (stop[1:] != stop[:-1])
        indices.append((first[change], stop[change]))
    grid = ax[(slice(None),) * 3 + tuple(slice(None, None, r) for r in steps)]
    sums = jnp.sum(lax.convert_element_type(grid, jnp.float64), axis=2)  # (N', G, *grid)
    total = jnp.sum(sums, axis=tuple(range(2, sums.ndim)))  # (N', G)
    for i, (first, stop) in enumerate(indices):
        axis = 2 + i
        running = jnp.cumsum(sums, axis=axis)
        running = lax.pad(running, jnp.zeros((), running.dtype),
                          [(1, 0, 0) if k == axis else (0, 0, 0) for k in range(running.ndim)])
        sums = jnp.take(running, stop, axis=axis) - jnp.take(running, first, axis=axis)
    least = jnp.min(jnp.reshape(sums, (*sums.shape[:2], -1)), axis=2)
    bound = 4.0 * (sum(grid.shape[3:]) + ax.shape[2] + len(sp.axes)) * U64 * total
    return least - bound

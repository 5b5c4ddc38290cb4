"""Whether a convolution is computed by FFT: the one decision every backend with an FFT path takes.

:func:`decide` takes the canonical problem (:mod:`polyconv.spec.canonical`),
the accumulation dtype, the mode (:func:`polyconv.use_fft`) and the backend
whose rates apply (:mod:`polyconv.calibration`), and returns a
:class:`Decision`: whether to use FFT, why, the plan and the images per
transform, and the cost model's estimate of both paths.  The NumPy backend
takes it per canonical problem (each phase of an lhs-dilated convolution for
itself), the torch and CuPy backends per spec (:mod:`.whole`);
:func:`polyconv.explain` shows it.  The rule, in order:

* ``never``: no FFT.
* the dtype: the error rule.  A transform's rounding error grows like
  ``log2(prod(L)) * u_fft`` times the output's *largest* magnitude, the
  direct sum's (and the conformance suite's bound) like
  ``4 * sqrt(K) * u_acc`` times each element's *own* (``K`` products per
  output, ``u`` the unit roundoffs).  The transforms run in float64
  (complex128), which meets the bound of float32 accumulation with a margin
  of about ``2**29 / log2(prod(L))``: FFT is for operands accumulated in
  float32 or complex64 (float16, bfloat16, float32, complex64).  For 64-bit
  accumulation there is no wider transform, and near padded edges (where an
  element's magnitude is a fraction of the largest) float64 transforms miss
  float64's elementwise bound; integers and bool stay exact: no FFT.
* nothing to transform: an empty sum, no spatial axis (a matrix product),
  or no output that reads the input (the result is zeros).
* the memory: the kernel's transform and the transforms of one chunk of
  images must fit in ``workspace`` bytes, whatever the mode.
* ``always``: FFT, with the largest chunk that fits.
* ``auto``: the cost model: FFT when its estimated time is below the direct
  one's.  The precision does not change the decision: ``'highest'`` asks for
  float32's accuracy, which float64 transforms exceed.

Each call by FFT still checks its operands (:mod:`.accuracy`): a non-finite
value, which a transform spreads over the whole result, and in ``auto`` mode
operands whose range breaks the error rule at some output, send the call to
the direct path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from polyconv.calibration import Constants, constants
from polyconv.spec.canonical import Problem

from .geometry import SpectralPlan, spectral_plan

__all__ = ["Decision", "decide", "eligible", "depthwise_class", "fft_seconds", "direct_seconds", "transform_passes",
           "product_ops", "WORKSPACE_BYTES"]

#: Transforms of the kernel and of one chunk of images stay within this.
WORKSPACE_BYTES = 256 << 20


def _bytes_per_image(p: SpectralPlan, real_itemsize: int, complex_: bool) -> int:
    """Workspace of one image: its input transform twice (the product's layout),
    the product twice, the inverse transform and the kept part."""
    c = 2 * real_itemsize
    f = p.frequencies(not complex_)
    inverse = p.points() * (c if complex_ else real_itemsize)
    return p.groups * (2 * p.cg * f * c + 2 * p.og * f * c + p.og * inverse)


def transform_passes(p: SpectralPlan, complex_: bool) -> int:
    """One-axis transform passes over one point, in every transform of the FFT
    path: the input's, the kernel's and the output's, each ``prod(L)`` points
    once per spatial axis (twice for complex data)."""
    transforms = p.batch * p.groups * p.cg + p.groups * p.og * p.cg + p.batch * p.groups * p.og
    return transforms * p.points() * len(p.axes) * (2 if complex_ else 1)


def fft_seconds(p: SpectralPlan, complex_: bool, rates: Constants) -> float:
    """The cost model's time for the FFT path.

    A transform's time is counted per point and axis, not as ``n log2(n)``
    operations: for the lengths convolutions have (tens to tens of
    thousands), the passes over memory, the strided axes and the conversions
    around them cost more than the arithmetic, and NumPy's time per point
    and axis stays within 2.3 to 3.9 ns from 72x72 to 1080x1080 and 1-d
    lengths of 1024 to 17496 (measured on a 2-core x86 machine)."""
    return transform_passes(p, complex_) / rates.fft_points + product_ops(p, complex_) / rates.product_flops


def product_ops(p: SpectralPlan, complex_: bool) -> float:
    """Operations of the frequency domain's products: 8 per complex multiply-add,
    ``N' * G * O_g * C_g`` of them per frequency."""
    return 8.0 * p.batch * p.groups * p.og * p.cg * p.frequencies(not complex_)


#: The taps of the kernels ``depthwise_flops`` and ``depthwise_large_flops`` are measured on.
DEPTHWISE_TAPS = (121, 961)


def depthwise_class(cg: int, og: int) -> bool:
    """Whether a problem of ``cg`` input and ``og`` output channels per group is costed at the
    depthwise rates (one input channel, at most four outputs) rather than the dense one.

    >>> depthwise_class(1, 4), depthwise_class(1, 8), depthwise_class(3, 1)
    (True, False, False)
    """
    return cg == 1 and og <= 4


def direct_seconds(p: SpectralPlan, complex_: bool, rates: Constants, direct_flops: float | None = None) -> float:
    """The cost model's time for the direct path: at ``direct_flops`` where the
    backend gives its own rate for this problem, else a depthwise
    convolution's rate interpolated in ``log(taps)`` between the two measured
    ones (and held beyond them), a dense one's rate otherwise."""
    if direct_flops is not None:
        rate = direct_flops
    elif depthwise_class(p.cg, p.og):
        small, large = DEPTHWISE_TAPS
        taps = min(max(math.prod(p.window), small), large)
        t = math.log(taps / small) / math.log(large / small)
        rate = math.exp((1 - t) * math.log(rates.depthwise_flops) + t * math.log(rates.depthwise_large_flops))
    else:
        rate = rates.direct_flops
    return (8.0 if complex_ else 2.0) * p.macs() / rate


def eligible(compute: str) -> bool:
    """Whether a convolution accumulated in dtype ``compute`` (a canonical name) may be computed by FFT.

    >>> eligible("float32"), eligible("complex64"), eligible("float64"), eligible("int64")
    (True, True, False, False)
    """
    return compute in ("float32", "complex64")


def _chunk(p: SpectralPlan, complex_: bool, workspace: int) -> int:
    """The most images per transform whose transforms, with the kernel's, fit ``workspace`` (0: none)."""
    real_itemsize = 8
    kernel = 2 * p.groups * p.og * p.cg * p.frequencies(not complex_) * 2 * real_itemsize
    return max(0, min(p.batch, (workspace - kernel) // max(_bytes_per_image(p, real_itemsize, complex_), 1)))


@dataclass(frozen=True)
class Decision:
    """Whether a problem is computed by FFT, and why.

    Attributes
    ----------
    use
        True: the FFT path (each call still checks its operands, see the module docstring).
    why
        The rule that decided, in words.
    mode
        The FFT mode it was decided in.
    plan, chunk
        The :class:`~.geometry.SpectralPlan` and the images per transform (``use`` only).
    fft_seconds, direct_seconds
        The cost model's estimates, where it got that far (None before).
    """

    use: bool
    why: str
    mode: str
    plan: SpectralPlan | None = None
    chunk: int = 0
    fft_seconds: float | None = None
    direct_seconds: float | None = None

    @property
    def checked(self) -> bool:
        """Whether each call checks the operands' range against the error rule (``auto``)."""
        return self.mode == "auto"


def decide(problem: Problem, compute: str, mode: str, backend: str, workspace: int = WORKSPACE_BYTES,
           direct_flops: float | None = None) -> Decision:
    """The FFT decision for ``problem`` (no lhs dilation: zero-stuff or split it first) accumulated
    in ``compute`` (a canonical dtype name), in FFT ``mode``, with ``backend``'s rates, or with
    ``direct_flops`` (operations per second) for its direct path where the backend knows the
    rate of the direct computation it would run for this problem better than its rates'
    classes do (the JAX backend on the CPU, where XLA's convolution runs few channels at a
    few GFLOP/s: ``docs/jax-backend.md``).

    Examples
    --------
    >>> from polyconv.spec.canonical import Problem
    >>> big = Problem(8, 32, 1, 1, (256, 256), (31, 31), (256, 256), (1, 1), (1, 1), (15, 15))
    >>> decide(big, "float32", "auto", "numpy").use
    True
    >>> decide(big, "float64", "auto", "numpy").why
    'accumulates in float64: FFT is only for float32 and complex64 accumulation'
    """
    if mode == "never":
        return Decision(False, "FFT mode 'never'", mode)
    if not eligible(compute):
        return Decision(False, f"accumulates in {compute}: FFT is only for float32 and complex64 accumulation", mode)
    if problem.empty:
        return Decision(False, "nothing to add up (a zero-size axis, no taps or no channels)", mode)
    if not problem.sizes:
        return Decision(False, "no spatial axis (a matrix product)", mode)
    sp = spectral_plan(problem)
    if sp is None:
        return Decision(False, "no output reads the input (the result is zeros)", mode)
    complex_ = compute == "complex64"
    rates = constants(backend)
    fft_s, direct_s = fft_seconds(sp, complex_, rates), direct_seconds(sp, complex_, rates, direct_flops)
    chunk = _chunk(sp, complex_, workspace)
    if chunk < 1:
        return Decision(False, f"one image's transforms do not fit the workspace ({workspace >> 20} MiB)", mode,
                        fft_seconds=fft_s, direct_seconds=direct_s)
    if mode == "always":
        return Decision(True, "FFT mode 'always'", mode, sp, chunk, fft_s, direct_s)
    use = fft_s < direct_s
    whose = f"{backend}'s rates" if direct_flops is None else \
        f"{backend}'s rates, its direct path at {direct_flops / 1e9:.3g} GFLOP/s"
    why = (f"the cost model ({whose}): FFT {fft_s * 1e3:.3g} ms "
           f"{'<' if use else '>='} direct {direct_s * 1e3:.3g} ms")
    return Decision(use, why, mode, sp if use else None, chunk if use else 0, fft_s, direct_s)

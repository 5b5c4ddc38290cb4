"""Whether a convolution is computed by FFT: the mode, the error rule, the memory and the cost model.

:func:`decide` returns the images per transform (the batch chunk) when FFT
is to be used, else 0:

* ``never``: 0.  Integer and boolean dtypes never reach here (the callers
  keep them on their exact paths).
* the memory: the kernel's transform and the transforms of one chunk of
  images must fit in ``workspace`` bytes (else 0, whatever the mode);
* ``always``: the largest chunk that fits;
* the error rule, checked by the caller (:func:`eligible`): a transform's
  rounding error grows like ``log2(prod(L)) * u_fft`` times the output's
  *largest* magnitude, the direct sum's (and the conformance suite's bound)
  like ``4 * sqrt(K) * u_acc`` times each element's *own* (``K`` products
  per output, ``u`` the unit roundoffs).  The transforms run in float64
  (complex128), which meets the bound of float32 accumulation with a margin
  of about ``2**29 / log2(prod(L))``: FFT is for operands accumulated in
  float32 or complex64 (float16, bfloat16, float32, complex64).  For 64-bit
  accumulation there is no wider transform, and near padded edges (where an
  element's magnitude is a fraction of the largest) float64 transforms miss
  float64's elementwise bound: never FFT;
* ``always``: then the largest chunk that fits;
* ``auto``: then the cost model: FFT when its estimated time is below the
  direct one's (:mod:`polyconv.calibration`'s rates).  The precision does
  not change the decision: ``'highest'`` asks for float32's accuracy, which
  float64 transforms exceed.

The call itself still checks its operands: a non-finite value, which a
transform spreads over the whole result, sends the call to the direct path.
"""

from __future__ import annotations

import math

from polyconv.calibration import Constants

from .geometry import SpectralPlan

__all__ = ["eligible", "decide", "fft_seconds", "direct_seconds", "transform_passes", "product_ops",
           "WORKSPACE_BYTES"]

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


def direct_seconds(p: SpectralPlan, complex_: bool, rates: Constants) -> float:
    """The cost model's time for the direct path: a depthwise convolution's
    rate interpolated in ``log(taps)`` between the two measured ones (and
    held beyond them), a dense one's rate otherwise."""
    if p.cg == 1 and p.og <= 4:
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


def decide(p: SpectralPlan, mode: str, complex_: bool, rates: Constants, workspace: int = WORKSPACE_BYTES) -> int:
    """Images per transform when ``p`` (accumulated in an :func:`eligible` dtype)
    is to be computed by FFT in ``mode``, else 0 (see the module docstring)."""
    if mode == "never":
        return 0
    real_itemsize = 8
    kernel = 2 * p.groups * p.og * p.cg * p.frequencies(not complex_) * 2 * real_itemsize
    chunk = min(p.batch, (workspace - kernel) // max(_bytes_per_image(p, real_itemsize, complex_), 1))
    if chunk < 1:
        return 0
    if mode == "always":
        return chunk
    return chunk if fft_seconds(p, complex_, rates) < direct_seconds(p, complex_, rates) else 0

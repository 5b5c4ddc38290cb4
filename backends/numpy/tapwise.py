"""The convolution tap by tap, forming only the products of the definition.

A convolution's output sums the products of kernel taps with *input
elements*: the padding and the holes of an lhs dilation form no product.
The fast strategies pad with zeros and, for lhs dilation, read phases that
skip the holes but still pad; a zero times an infinite or NaN tap is NaN,
which the definition (and ``jax.lax``, and the torch backend's transposed
convolutions) do not have.  For a kernel with such a tap, on a spec whose
windows reach padding or holes, the NumPy backend computes this way instead:
for each tap, the outputs that read an input element through it form a
strided box (:func:`polyconv.spec.canonical.axis_reads`, exact integer
arithmetic), and one matrix product per tap adds that tap's products into
them.  The same number of products as a direct sum, in a tap-major order.

Examples
--------
>>> import numpy as np
>>> from polyconv.spec import conv_spec
>>> x = np.ones((1, 1, 3))
>>> w = np.array([np.nan, 1.0]).reshape(1, 1, 2)
>>> spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, (1,), ((0, 0),), lhs_dilation=(3,))
>>> runner(spec, np.dtype(np.float64), np.dtype(np.float64))(x, w)[0, 0].tolist()
[nan, 0.0, 1.0, nan, 0.0, 1.0]
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from polyconv import caching
from polyconv.spec import ConvSpec
from polyconv.spec.canonical import TapReads, axis_reads
from polyconv.spec.canonical import problem as canonical_problem

from .views import input_view, kernel_view, output_view

__all__ = ["reaches_outside", "runner"]


def _reads(spec: ConvSpec) -> tuple[tuple[TapReads, ...], ...]:
    """Per spatial axis, what each tap reads (canonical order)."""
    p = canonical_problem(spec)
    return tuple(axis_reads(size, out, k, s, ld, d, lo) for size, out, k, s, ld, d, lo in zip(
        p.sizes, p.out, p.window, p.strides, spec.lhs_dilation, p.dilation, p.low))


@caching.memoize(256)
def reaches_outside(spec: ConvSpec) -> bool:
    """Whether some window of ``spec`` reaches padding or a hole of the lhs
    dilation (on some axis, a tap that does not read an input element for
    every output)."""
    return any(len(reads) < k or any(r.count < out for r in reads)
               for reads, k, out in zip(_reads(spec), spec.window, spec.out_spatial))


def runner(spec: ConvSpec, compute: np.dtype, out_dtype: np.dtype) -> Callable[[Any, Any], np.ndarray]:
    """``run(lhs, rhs)``: the convolution of ``spec`` by one product per tap
    over the outputs it reads input for, accumulated in ``compute``."""
    reads = _reads(spec)
    p = canonical_problem(spec)

    def run(lhs: Any, rhs: Any) -> np.ndarray:
        lhs, rhs = np.asarray(lhs), np.asarray(rhs)
        out = np.empty(spec.out_shape, out_dtype)
        y = output_view(out, spec)
        acc = np.zeros(y.shape, compute)
        x, w = input_view(lhs, spec), kernel_view(rhs, spec)
        for taps in itertools.product(*reads):
            tap = tuple(r.tap for r in taps)
            xs = x[(slice(None),) * 3 + tuple(slice(r.in_start, r.in_stop, r.in_step) for r in taps)]
            ys = (slice(None),) * 3 + tuple(slice(r.out_start, r.out_stop, r.out_step) for r in taps)
            wk = w[(slice(None),) * 3 + tap].astype(compute, copy=False)  # (G, O_g, C_g)
            part = np.matmul(wk, xs.reshape(p.batch, p.groups, p.cg, -1).astype(compute, copy=False))
            acc[ys] += part.reshape(p.batch, p.groups, p.og, *(r.count for r in taps))
        np.copyto(y, acc, casting="unsafe")
        return out

    return run

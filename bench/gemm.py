"""The NumPy backend's time in BLAS: its matrix products timed alone, on operands of the same sizes.

On the shapes its shifted-window GEMM computes (:mod:`polyconv.backends.numpy.offsets`,
directly or per output phase of a transposed convolution), the NumPy backend's
time is its matrix products plus the copies around them (the padded slab, the
windows buffer, the accumulation, the store).  :func:`products` lists the
products a call makes, ``(groups, O_g, K, columns)`` each, and
:func:`in_gemm` times NumPy's ``matmul`` on fresh operands of exactly
those sizes, alone, interleaved with the call: the bench's "in GEMM" figure is
that time over the call's,
the fraction of NumPy's own rate for products of the same sizes that the
backend reaches.  (Where every product is small enough for BLAS to run it on one
thread, the backend runs its chunks on several threads, which the sequence timed
here does not: the figure can then exceed 1.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .calls import lax_style_args
from .shapes import Shape
from .timing import time_pair

__all__ = ["products", "products_call", "in_gemm"]


def _spec(shape: Shape) -> Any:
    from polyconv.spec import conv_spec, conv_transpose_spec

    name, args, kwargs = lax_style_args(shape)
    if name == "conv_transpose":
        return conv_transpose_spec(shape.lhs, shape.rhs, "float32", "float32", *args, **kwargs).conv
    return conv_spec(shape.lhs, shape.rhs, "float32", "float32", *args, **kwargs)


def products(shape: Shape) -> list[tuple[int, int, int, int]] | None:
    """The float32 matrix products the NumPy backend makes for ``shape``, or None
    where it does not compute it by the shifted-window GEMM (FFT, depthwise,
    pointwise, small).

    >>> from polyconv.bench.shapes import SUITE
    >>> products(SUITE[0])[0]  # the ResNet 3x3: three taps a product, an image a chunk
    (1, 64, 192, 3248)
    """
    from polyconv.backends.numpy import offsets, polyphase, strategy

    from polyconv.algorithm import fft_mode
    from polyconv.spec.canonical import problem

    spec = _spec(shape)
    choice = strategy.choose(spec, fft_mode())
    whole = problem(spec)
    if choice.name == "offsets":
        problems = [whole]
    elif choice.name == "polyphase":
        parts = polyphase.decompose(whole, spec.lhs_dilation)
        problems = [p.problem for p, name in zip(parts, choice.parts) if name == "offsets" and p.problem is not None]
    else:
        return None
    return [product for p in problems for product in offsets.products(offsets.plan(p, 4))] or None


def products_call(shape: Shape) -> Callable[[], None] | None:
    """A call of NumPy's ``matmul`` on every product of :func:`products` (operands of
    the same sizes, drawn once, results written in place), or None."""
    import numpy as np

    sizes = products(shape)
    if sizes is None:
        return None
    rng = np.random.default_rng(0)
    operands = {}
    for g, m, k, n in set(sizes):
        operands[(g, m, k, n)] = (rng.standard_normal((g, m, k), dtype=np.float32),
                                  rng.standard_normal((g, k, n), dtype=np.float32), np.empty((g, m, n), np.float32))
    calls = [operands[s] for s in sizes]
    matmul = np.matmul

    def run() -> None:
        for a, b, out in calls:
            matmul(a, b, out=out)

    return run


def in_gemm(shape: Shape, call: Callable[[], Any], budget: float) -> float | None:
    """The share of ``call`` (the NumPy backend's convolution of ``shape``) that its
    matrix products take, timed alone and interleaved with it in this process
    (:func:`.timing.time_pair`: this machine's speed drifts by tens of percent
    within a minute, which separate timings would take for a difference), or None."""
    products_only = products_call(shape)
    if products_only is None:
        return None
    t_call, t_products = time_pair(call, products_only, budget)
    return t_products / t_call

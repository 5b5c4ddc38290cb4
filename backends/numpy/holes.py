"""The NumPy backend's rule for non-finite kernels: padding and holes are zeros that multiply.

Every strategy of the NumPy backend computes as if the padding and the holes
of the lhs dilation were zeros multiplied by the kernel, as the direct
strategies do (they pad with zeros): an infinite or NaN kernel tap that
lands on padding or on a hole makes that output element NaN (``0 * inf``).
That is the pattern of the small problems' gather, and of PyTorch's padded
convolutions; XLA forms no such products, and the conformance suite accepts
both (:func:`polyconv.conformance.reference.zero_product_nans`).

The polyphase strategy never reads a hole, so it calls :func:`fill_nans`
afterwards: with a finite kernel (the usual case) that costs one pass over
the kernel.
"""

from __future__ import annotations

from itertools import product

import numpy as np

from .problem import Problem

__all__ = ["fill_nans"]


def _structural(
    size: int, window: int, stride: int, dilation: int, low: int, lhs_dilation: int, out: int
) -> np.ndarray:
    """``(window, out)``: True where tap ``k`` of output ``y`` lands on padding or a hole
    (dilated position ``y * stride + k * dilation - low`` is not an input element)."""
    p = np.arange(out)[None, :] * stride + np.arange(window)[:, None] * dilation - low
    last = (size - 1) * lhs_dilation
    hole: np.ndarray = (p < 0) | (p > last) | (p % lhs_dilation != 0)
    return hole


def fill_nans(problem: Problem, lhs_dilation: tuple[int, ...], w: np.ndarray, y: np.ndarray) -> None:
    """Set to NaN the outputs of ``y`` (``(N', G, O_g, *Y)``) over whose window a
    non-finite tap of ``w`` (``(G, O_g, C_g, *K)``) lands on padding or a hole.

    ``problem`` describes the convolution on the lhs-dilated input (its
    ``low`` and ``out`` as the spec gives them).
    """
    finite = np.isfinite(w)
    if finite.all():
        return
    bad = ~finite.all(axis=2)  # (G, O_g, *K): some channel of the tap is not finite
    axes = [
        _structural(*args)
        for args in zip(problem.sizes, problem.window, problem.strides, problem.dilation, problem.low, lhs_dilation,
                        problem.out)
    ]
    nd = len(axes)
    for tap in product(*(range(k) for k in problem.window)):
        outputs = bad[(slice(None), slice(None)) + tap]  # (G, O_g)
        if not outputs.any():
            continue
        mask = np.zeros(problem.out, bool)
        for i, (a, k) in enumerate(zip(axes, tap)):
            shape = [1] * nd
            shape[i] = problem.out[i]
            mask = mask | a[k].reshape(shape)
        if mask.any():
            y[:, outputs[(...,) + (None,) * nd] & mask] = np.nan

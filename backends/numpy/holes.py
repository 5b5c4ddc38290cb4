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

import numpy as np

from . import geometry
from .problem import Problem

__all__ = ["fill_nans"]


def fill_nans(problem: Problem, lhs_dilation: tuple[int, ...], w: np.ndarray, y: np.ndarray) -> None:
    """Set to NaN the outputs of ``y`` (``(N', G, O_g, *Y)``) over whose window a
    non-finite tap of ``w`` (``(G, O_g, C_g, *K)``) lands on padding or a hole.

    ``problem`` describes the convolution on the lhs-dilated input (its
    ``low`` and ``out`` as the spec gives them); the positions are exact for
    any padding or dilation (:func:`.geometry.padding_nans`).
    """
    geometry.padding_nans(problem, w, y, lhs_dilation)

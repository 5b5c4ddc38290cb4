"""Canonical views of a convolution's NumPy arrays.

Every NumPy strategy works on a :class:`~polyconv.spec.canonical.Problem`
(the convolution's sizes and geometry, from :mod:`polyconv.spec.canonical`)
and on three views, whatever the caller's layouts:

* the input as ``(N', G, C_g, *S)``: batch, groups, channels per group,
  spatial axes (a view of the caller's array: feature groups split the
  channel axis, batch groups split the batch axis, which moves next to the
  channels);
* the kernel as ``(G, O_g, C_g, *K)``;
* the output as ``(N', G, O_g, *Y)``: a view of the freshly allocated
  result, in the caller's output layout, that the strategy fills.

Problems have no lhs dilation: :mod:`.polyphase` turns a spec with lhs
dilation into several of them.
"""

from __future__ import annotations

import numpy as np

from polyconv.spec import ConvSpec

__all__ = ["input_view", "kernel_view", "output_view"]


def input_view(lhs: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``lhs`` as ``(N', G, C_g, *S)`` (a view)."""
    dn = spec.dimension_numbers
    n = spec.nspatial
    x: np.ndarray = lhs.transpose(dn.lhs_spec)  # (N, C, *S)
    sizes = x.shape[2:]
    if spec.batch_group_count > 1:  # batch-major groups: (B, N', C, *S) -> (N', B, C, *S)
        b = spec.batch_group_count
        x = x.reshape(b, spec.batch // b, spec.in_features, *sizes)
        batch_major: np.ndarray = x.transpose(1, 0, *range(2, n + 3))
        return batch_major
    g = spec.feature_group_count
    return x.reshape(spec.batch, g, spec.in_features // g, *sizes)


def kernel_view(rhs: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``rhs`` as ``(G, O_g, C_g, *K)`` (a view)."""
    w: np.ndarray = rhs.transpose(spec.dimension_numbers.rhs_spec)  # (O, I, *K)
    return w.reshape(spec.groups, w.shape[0] // spec.groups, *w.shape[1:])


def output_view(out: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The result array ``out`` (in the output layout) as ``(N', G, O_g, *Y)`` (a view)."""
    y: np.ndarray = out.transpose(spec.dimension_numbers.out_spec)  # (N', O, *Y)
    return y.reshape(y.shape[0], spec.groups, y.shape[1] // spec.groups, *y.shape[2:])


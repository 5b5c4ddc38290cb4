"""A convolution in canonical terms, and canonical views of its arrays.

Every NumPy strategy works on three views, whatever the caller's layouts:

* the input as ``(N', G, C_g, *S)``: batch, groups, channels per group,
  spatial axes (a view of the caller's array: feature groups split the
  channel axis, batch groups split the batch axis, which moves next to the
  channels);
* the kernel as ``(G, O_g, C_g, *K)``;
* the output as ``(N', G, O_g, *Y)``: a view of the freshly allocated
  result, in the caller's output layout, that the strategy fills.

A :class:`Problem` holds the sizes and the per-axis geometry of a
convolution *without* lhs dilation (:mod:`.polyphase` turns one with lhs
dilation into several of these).  Problems are frozen and hashable: plans are
cached on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from polyconv.spec import ConvSpec

__all__ = ["Problem", "from_spec", "input_view", "kernel_view", "output_view"]


@dataclass(frozen=True)
class Problem:
    """A convolution without lhs dilation, in canonical order.

    Attributes
    ----------
    batch, groups, cg, og
        ``N'`` (batch per batch group), groups ``G`` (feature or batch
        groups), input and output channels per group.
    sizes, window, out
        Input, kernel and output spatial sizes.
    strides, dilation
        Window strides and rhs (kernel) dilation per axis.
    low
        Low padding per axis (negative: cropping); the high padding is
        implied by ``out``.
    """

    batch: int
    groups: int
    cg: int
    og: int
    sizes: tuple[int, ...]
    window: tuple[int, ...]
    out: tuple[int, ...]
    strides: tuple[int, ...]
    dilation: tuple[int, ...]
    low: tuple[int, ...]

    @property
    def nspatial(self) -> int:
        """Number of spatial axes."""
        return len(self.sizes)

    @property
    def taps(self) -> int:
        """Kernel taps (product of the window)."""
        return math.prod(self.window)

    @property
    def positions(self) -> int:
        """Output positions per image and group (product of ``out``)."""
        return math.prod(self.out)

    @property
    def empty(self) -> bool:
        """True when every output element is an empty sum, or there is none."""
        return 0 in (self.batch, self.groups, self.og, self.cg, self.taps, self.positions, *self.sizes)

    def macs(self) -> int:
        """Multiply-adds of the direct computation (padding included)."""
        return self.batch * self.groups * self.og * self.cg * self.taps * self.positions


def from_spec(spec: ConvSpec) -> Problem:
    """The :class:`Problem` of ``spec``, ignoring its lhs dilation (which :mod:`.polyphase` handles)."""
    groups = max(spec.feature_group_count, spec.batch_group_count)
    return Problem(
        batch=spec.batch // spec.batch_group_count,
        groups=groups,
        cg=spec.in_features // spec.feature_group_count,
        og=spec.out_features // groups,
        sizes=spec.lhs_spatial,
        window=spec.window,
        out=spec.out_spatial,
        strides=spec.window_strides,
        dilation=spec.rhs_dilation,
        low=tuple(lo for lo, _ in spec.padding),
    )


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
    groups = max(spec.feature_group_count, spec.batch_group_count)
    return w.reshape(groups, w.shape[0] // groups, *w.shape[1:])


def output_view(out: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The result array ``out`` (in the output layout) as ``(N', G, O_g, *Y)`` (a view)."""
    y: np.ndarray = out.transpose(spec.dimension_numbers.out_spec)  # (N', O, *Y)
    groups = max(spec.feature_group_count, spec.batch_group_count)
    return y.reshape(y.shape[0], groups, y.shape[1] // groups, *y.shape[2:])


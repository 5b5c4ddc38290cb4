"""The gradients of ``conv_general_dilated``, as two more convolutions.

For ``out = conv(lhs, rhs)`` and a cotangent ``g`` of ``out``'s shape:

* **lhs cotangent**: ``g`` convolved with the spatially flipped kernel, with
  ``lhs_dilation = window_strides`` and ``window_strides = lhs_dilation``
  (strides become dilation and back), the kernel's I and O roles swapped,
  and padding ``(k - 1 - low, in + k - 1 - out - (k - 1 - low))`` in dilated
  sizes.  Feature groups move the group axis from the kernel's O axis into
  its I axis; batch groups do the same and then move it from the result's
  features into its batch.
* **rhs cotangent**: ``lhs`` convolved with ``g`` as the kernel: lhs's feature
  axis plays the batch, its batch plays the features, ``g``'s features are the
  output features; ``rhs_dilation`` and ``window_strides`` trade places.
  Feature groups become batch groups and batch groups feature groups.

These are XLA's rules (and JAX's transpose rules); the plans below hold only
shapes and parameters, so they are computed once per forward spec.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..caching import memoize, typed_key
from .conv import ConvSpec, conv_spec
from .dimension_numbers import ConvDimensionNumbers
from .padding import dilate_dim

__all__ = ["VjpLhsPlan", "VjpRhsPlan", "vjp_lhs_plan", "vjp_rhs_plan"]


@dataclass(frozen=True)
class VjpLhsPlan:
    """The convolution giving the lhs cotangent.

    Its lhs is the cotangent (in the forward output's layout); its rhs is the
    forward kernel in canonical layout ``(O, I, *K)``, regrouped to
    ``(O // groups, groups * I, *K)`` and flipped spatially; its output is in
    canonical layout ``(N // batch_groups, batch_groups * C, *S)``, and the
    batch groups are then moved back into the batch.  ``rhs_spec`` and
    ``lhs_spec`` are the forward operands' layouts.
    """

    conv: ConvSpec
    groups: int
    batch_groups: int
    rhs_spec: tuple[int, ...]
    lhs_spec: tuple[int, ...]


@dataclass(frozen=True)
class VjpRhsPlan:
    """The convolution giving the rhs cotangent (None: the cotangent is empty,
    so the rhs cotangent is zero).  Its output is in the kernel's layout."""

    conv: ConvSpec | None


def _swap(spec: tuple[int, ...]) -> tuple[int, ...]:
    return (spec[1], spec[0], *spec[2:])


@memoize(4096, key=typed_key)
def vjp_lhs_plan(spec: ConvSpec) -> VjpLhsPlan:
    """The plan of the lhs cotangent of ``spec``'s convolution."""
    dn = spec.dimension_numbers
    n = spec.nspatial
    groups = spec.groups
    o, i = spec.out_features, spec.rhs_shape[dn.rhs_spec[1]]
    kernel = (o // groups, groups * i, *spec.window)  # canonical, regrouped
    pads = []
    for size, k, lo_hi, s, ld, rd, y in zip(
        spec.lhs_spatial, spec.window, spec.padding, spec.window_strides, spec.lhs_dilation,
        spec.rhs_dilation, spec.out_spatial,
    ):
        k_eff, in_eff, out_eff = dilate_dim(k, rd), dilate_dim(size, ld), dilate_dim(y, s)
        before = k_eff - lo_hi[0] - 1
        pads.append((before, in_eff + k_eff - 1 - out_eff - before))
    canonical = tuple(range(n + 2))
    conv = conv_spec(
        spec.out_shape, kernel, spec.out_dtype, spec.out_dtype, spec.lhs_dilation, tuple(pads),
        spec.window_strides, spec.rhs_dilation,
        ConvDimensionNumbers(dn.out_spec, _swap(canonical), canonical),
        groups, 1, spec.precision, None, op="conv_general_dilated_vjp",
    )
    return VjpLhsPlan(
        conv=conv, groups=groups, batch_groups=spec.batch_group_count, rhs_spec=dn.rhs_spec, lhs_spec=dn.lhs_spec
    )


@memoize(4096, key=typed_key)
def vjp_rhs_plan(spec: ConvSpec) -> VjpRhsPlan:
    """The plan of the rhs cotangent of ``spec``'s convolution."""
    if 0 in spec.out_shape:
        return VjpRhsPlan(conv=None)
    dn = spec.dimension_numbers
    pads = []
    for size, k, lo_hi, s, ld, rd, y in zip(
        spec.lhs_spatial, spec.window, spec.padding, spec.window_strides, spec.lhs_dilation,
        spec.rhs_dilation, spec.out_spatial,
    ):
        k_eff, in_eff, out_eff = dilate_dim(k, rd), dilate_dim(size, ld), dilate_dim(y, s)
        lo = lo_hi[0]
        pads.append((lo, out_eff - in_eff + k_eff - lo - 1))
    fgc, bgc = spec.feature_group_count, spec.batch_group_count
    conv = conv_spec(
        spec.lhs_shape, spec.out_shape, spec.out_dtype, spec.out_dtype, spec.rhs_dilation, tuple(pads),
        spec.lhs_dilation, spec.window_strides,
        ConvDimensionNumbers(_swap(dn.lhs_spec), _swap(dn.out_spec), _swap(dn.rhs_spec)),
        bgc, fgc, spec.precision, None, op="conv_general_dilated_vjp",
    )
    return VjpRhsPlan(conv=conv)

"""``conv_general_dilated_patches`` and ``conv_general_dilated_local``.

Patches: the output's feature axis holds each window's values, ordered
``"C" + rhs spatial letters`` (channel-major), of size ``C * prod(filter_shape)``.
Its spec is the feature-grouped convolution (one group per channel) with an
identity kernel of shape ``(C * K, 1, *filter_shape)``, which gives the
shapes and validates the parameters; the values are copies of the input
(:mod:`polyconv.gather`), not that convolution's products, which would make
``inf * 0`` NaN around an infinite input.

Local (unshared) convolution: the kernel's spatial axes are the *output*
positions, and its I axis is the patch axis (size ``C * prod(filter_shape)``,
same order): ``out[n, o, y] = sum_i patches[n, i, y] * rhs[o, i, y]``.
``filter_shape`` is in the order of the spatial letters of the rhs spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..caching import memoize, typed_key
from ..errors import ConvShapeError
from .conv import ConvSpec, _check_dtypes, _shape, conv_spec, parse_int_tuple
from .dimension_numbers import ConvDimensionNumbers, conv_dimension_numbers
from .precision import parse_precision

__all__ = [
    "PatchesSpec",
    "LocalSpec",
    "patches_spec",
    "local_spec",
    "conv_general_dilated_patches_shape",
    "conv_general_dilated_local_shape",
]


@dataclass(frozen=True)
class PatchesSpec:
    """A validated patch extraction: the grouped identity convolution ``conv``."""

    conv: ConvSpec
    filter_shape: tuple[int, ...]

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of the result."""
        return self.conv.out_shape


@dataclass(frozen=True)
class LocalSpec:
    """A validated unshared convolution: its patches, kernel shape and result."""

    patches: PatchesSpec
    rhs_shape: tuple[int, ...]
    precision: tuple[str, str] | None
    out_shape: tuple[int, ...]

    @property
    def dimension_numbers(self) -> ConvDimensionNumbers:
        """The dimension numbers (shared by patches, kernel and output)."""
        return self.patches.conv.dimension_numbers


def patches_spec(
    lhs_shape: Any,
    lhs_dtype: Any,
    filter_shape: Any,
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    precision: Any = None,
    preferred_element_type: Any = None,
    op: str = "conv_general_dilated_patches",
) -> PatchesSpec:
    """Validate the arguments of ``conv_general_dilated_patches`` (cached)."""
    return _patches_spec(
        _shape(lhs_shape, op, "lhs"), lhs_dtype, filter_shape, window_strides, padding, lhs_dilation,
        rhs_dilation, dimension_numbers, precision, preferred_element_type, op,
    )


@memoize(4096, key=typed_key)
def _patches_spec(
    lhs_shape: tuple[int, ...], lhs_dtype: Any, filter_shape: Any, window_strides: Any, padding: Any,
    lhs_dilation: Any, rhs_dilation: Any, dimension_numbers: Any, precision: Any, preferred_element_type: Any,
    op: str,
) -> PatchesSpec:
    if len(lhs_shape) < 2:
        raise ConvShapeError(op, "lhs", "must have rank >= 2 (batch and feature axes)", got=f"shape {lhs_shape}")
    n = len(lhs_shape) - 2
    window = parse_int_tuple(filter_shape, n, op, "filter_shape")
    dn = conv_dimension_numbers(lhs_shape, (1, 1, *window), dimension_numbers, op, shapes=f"lhs shape {lhs_shape}")
    channels = lhs_shape[dn.lhs_spec[1]]
    taps = math.prod(window)
    # identity kernel (C * K, 1, *window), one group per channel; no channels: no groups
    canonical = (channels * taps, 1 if channels else 0, *window)
    kernel = [0] * (n + 2)
    for size, axis in zip(canonical, dn.rhs_spec):
        kernel[axis] = size
    prec = parse_precision(precision, op)
    conv = conv_spec(
        lhs_shape, tuple(kernel), lhs_dtype, lhs_dtype, window_strides, padding, lhs_dilation, rhs_dilation,
        dn, max(channels, 1), 1, None if prec is None else (prec[0], "default"), preferred_element_type, op=op,
    )
    return PatchesSpec(conv=conv, filter_shape=window)


def local_spec(
    lhs_shape: Any,
    rhs_shape: Any,
    lhs_dtype: Any,
    rhs_dtype: Any,
    window_strides: Any,
    padding: Any,
    filter_shape: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
    precision: Any = None,
    op: str = "conv_general_dilated_local",
) -> LocalSpec:
    """Validate the arguments of ``conv_general_dilated_local`` (cached)."""
    return _local_spec(
        _shape(lhs_shape, op, "lhs"), _shape(rhs_shape, op, "rhs"), lhs_dtype, rhs_dtype, window_strides,
        padding, filter_shape, lhs_dilation, rhs_dilation, dimension_numbers, precision, op,
    )


@memoize(4096, key=typed_key)
def _local_spec(
    lhs_shape: tuple[int, ...], rhs_shape: tuple[int, ...], lhs_dtype: Any, rhs_dtype: Any, window_strides: Any,
    padding: Any, filter_shape: Any, lhs_dilation: Any, rhs_dilation: Any, dimension_numbers: Any,
    precision: Any, op: str,
) -> LocalSpec:
    if len(rhs_shape) != len(lhs_shape):
        raise ConvShapeError(
            op, "rhs", f"must have the same rank as lhs (lhs shape {lhs_shape})", got=str(rhs_shape)
        )
    conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers, op)  # messages name the caller's shapes
    prec = parse_precision(precision, op)
    patches = patches_spec(
        lhs_shape, lhs_dtype, filter_shape, window_strides, padding, lhs_dilation, rhs_dilation,
        dimension_numbers, None if prec is None else prec[0], None, op=op,
    )
    _check_dtypes(lhs_dtype, rhs_dtype, None, op)
    dn = patches.conv.dimension_numbers
    out_spatial = patches.conv.out_spatial
    patch_size = patches.conv.out_features
    expected = [0] * len(rhs_shape)
    expected[dn.rhs_spec[0]] = rhs_shape[dn.rhs_spec[0]]
    expected[dn.rhs_spec[1]] = patch_size
    for axis, size in zip(dn.rhs_spec[2:], out_spatial):
        expected[axis] = size
    if tuple(expected) != rhs_shape:
        raise ConvShapeError(
            op, "rhs", f"must have shape {tuple(expected)}: its I axis is the patch (C * prod(filter_shape) = "
            f"{patch_size}) and its spatial axes are the output positions {out_spatial}",
            got=f"shape {rhs_shape}",
        )
    out = [0] * len(lhs_shape)
    canonical = (lhs_shape[dn.lhs_spec[0]], rhs_shape[dn.rhs_spec[0]], *out_spatial)
    for size, axis in zip(canonical, dn.out_spec):
        out[axis] = size
    return LocalSpec(patches=patches, rhs_shape=rhs_shape, precision=prec, out_shape=tuple(out))


def conv_general_dilated_patches_shape(
    lhs_shape: Any,
    filter_shape: Any,
    window_strides: Any,
    padding: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
) -> tuple[int, ...]:
    """Output shape of ``conv_general_dilated_patches`` without computing anything.

    Examples
    --------
    >>> conv_general_dilated_patches_shape((2, 3, 8, 8), (3, 3), (1, 1), 'VALID')
    (2, 27, 6, 6)
    """
    return patches_spec(
        lhs_shape, "float32", filter_shape, window_strides, padding, lhs_dilation, rhs_dilation,
        dimension_numbers, op="conv_general_dilated_patches_shape",
    ).out_shape


def conv_general_dilated_local_shape(
    lhs_shape: Any,
    rhs_shape: Any,
    window_strides: Any,
    padding: Any,
    filter_shape: Any,
    lhs_dilation: Any = None,
    rhs_dilation: Any = None,
    dimension_numbers: Any = None,
) -> tuple[int, ...]:
    """Output shape of ``conv_general_dilated_local``, checking the kernel's shape.

    Examples
    --------
    >>> conv_general_dilated_local_shape((2, 3, 8, 8), (5, 27, 6, 6), (1, 1), 'VALID', (3, 3))
    (2, 5, 6, 6)
    """
    return local_spec(
        lhs_shape, rhs_shape, "float32", "float32", window_strides, padding, filter_shape, lhs_dilation,
        rhs_dilation, dimension_numbers, op="conv_general_dilated_local_shape",
    ).out_shape

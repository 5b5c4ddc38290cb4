"""The spec layer: argument parsing, validation and shape rules, no arrays."""

from .conv import ConvSpec, conv_general_shape, conv_spec, parse_int_tuple
from .dimension_numbers import ConvDimensionNumbers, conv_dimension_numbers, conv_general_permutations
from .dtypes import dtype_bits, dtype_kind, dtype_name
from .padding import conv_output_size, dilate_dim, padtype_to_pads
from .patches import (
    LocalSpec,
    PatchesSpec,
    conv_general_dilated_local_shape,
    conv_general_dilated_patches_shape,
    local_spec,
    patches_spec,
)
from .precision import parse_precision
from .transpose import TransposeSpec, conv_transpose_shape, conv_transpose_spec, default_transpose_dimension_numbers
from .vjp import VjpLhsPlan, VjpRhsPlan, vjp_lhs_plan, vjp_rhs_plan

__all__ = [
    "ConvSpec",
    "LocalSpec",
    "PatchesSpec",
    "TransposeSpec",
    "VjpLhsPlan",
    "VjpRhsPlan",
    "conv_general_dilated_local_shape",
    "conv_general_dilated_patches_shape",
    "conv_transpose_shape",
    "conv_transpose_spec",
    "default_transpose_dimension_numbers",
    "local_spec",
    "patches_spec",
    "vjp_lhs_plan",
    "vjp_rhs_plan",
    "ConvDimensionNumbers",
    "conv_dimension_numbers",
    "conv_general_permutations",
    "conv_general_shape",
    "conv_output_size",
    "conv_spec",
    "dilate_dim",
    "dtype_bits",
    "dtype_kind",
    "dtype_name",
    "padtype_to_pads",
    "parse_int_tuple",
    "parse_precision",
]

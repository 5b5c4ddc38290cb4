"""The spec layer: argument parsing, validation and shape rules, no arrays."""

from .conv import ConvSpec, conv_general_shape, conv_spec, parse_int_tuple
from .dimension_numbers import ConvDimensionNumbers, conv_dimension_numbers, conv_general_permutations
from .dtypes import dtype_bits, dtype_kind, dtype_name
from .padding import conv_output_size, dilate_dim, padtype_to_pads
from .precision import parse_precision

__all__ = [
    "ConvSpec",
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

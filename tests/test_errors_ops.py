"""Errors of the four ops beyond ``conv_general_dilated``: ``conv_transpose``,
``conv_general_dilated_patches``, ``conv_general_dilated_local`` and
``conv_general_dilated_vjp``.

Every invalid argument raises a polyconv error before any backend runs, naming
the operation, the parameter and the value received; the class (and its
builtin bases) and the whole message are the same whether the operands are
NumPy arrays or Python lists, and the shape functions
(``conv_transpose_shape``, ``conv_general_dilated_patches_shape``,
``conv_general_dilated_local_shape``) raise the same error under their own
name.  Valid calls leave their inputs alone.

Cases whose id starts with ``should-`` describe the behaviour polyconv should
have and does not yet (a message that shows a value the caller never passed,
or names a parameter the op does not have); they fail until the spec layer is
fixed.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polyconv.backends.numpy
import pytest

import polyconv
import polyconv.derive
import polyconv.ops
from polyconv import (
    ConvArgumentError,
    ConvShapeError,
    ConvTypeError,
    PolyconvError,
)
from polyconv.errors import DtypeMismatchError

HIERARCHY = {
    ConvArgumentError: (ValueError,),
    ConvTypeError: (TypeError,),
    ConvShapeError: (ValueError, TypeError),
    DtypeMismatchError: (ConvTypeError, TypeError),
}


def cast(lhs: str, rhs: str) -> str:
    """The advice that ends a dtype-mismatch message."""
    return f". Cast one of them first: rhs to {lhs}, or lhs to {rhs}"


def int_pad(p: int, n: int = 2) -> str:
    """The advice that ends the message of an integer padding."""
    return f"{p}. To pad {p} on both sides of every spatial axis, write {((p, p),) * n}"


#: The advice that ends a feature-size mismatch under dimension_numbers=None (2-d).
DEFAULT_LAYOUT_2D = (
    ". dimension_numbers=None means channels first: lhs 'NCHW', rhs 'OIHW', out 'NCHW'; "
    "for channels-last operands pass dimension_numbers=('NHWC', 'HWIO', 'NHWC')"
)

TRANSPOSE = "conv_transpose"
PATCHES = "conv_general_dilated_patches"
LOCAL = "conv_general_dilated_local"
VJP = "conv_general_dilated_vjp"

# the shape function of each op, and the keyword arguments it takes
SHAPE_FUNCTIONS = {
    TRANSPOSE: ("conv_transpose_shape", {"rhs_dilation", "dimension_numbers", "transpose_kernel",
                                         "use_consistent_padding"}),
    PATCHES: ("conv_general_dilated_patches_shape", {"lhs_dilation", "rhs_dilation", "dimension_numbers"}),
    LOCAL: ("conv_general_dilated_local_shape", {"lhs_dilation", "rhs_dilation", "dimension_numbers"}),
}

# messages shared by many cases (without the "op: " prefix)
PREF_INCOMPATIBLE = (
    "preferred_element_type is incompatible with operands of dtype float64: the combinations allowed are "
    "(integer, integer), (integer, floating), (floating, floating), (complex, complex), (bool, any); got int32"
)
PREC = "precision must be None, one of 'default', 'high', 'highest', a jax.lax.Precision, or a pair of them; got "
DN_TYPE = (
    "dimension_numbers must be None, a ConvDimensionNumbers or three strings such as ('NCHW', 'OIHW', 'NCHW'); got "
)
EMPTY_WINDOW = "rhs must have spatial sizes >= 1: an empty window is not a convolution (XLA rejects it); got shape "


def ints2(param: str) -> str:
    return f"{param} must be a sequence of 2 positive integers; got "


def pads(n: int) -> str:
    return f"padding must be a padding name or a sequence of {n} (low, high) integer pair{'' if n == 1 else 's'}; got "


@dataclass
class Case:
    id: str
    op: str
    shapes: tuple[tuple[int, ...], ...]  # the operands: lhs[, rhs][, cotangent]
    args: tuple[Any, ...]  # the positional arguments after the operands
    kwargs: dict[str, Any]
    cls: type
    message: str  # without the "op: " prefix
    dtypes: tuple[str, ...] = field(default=())  # per operand; float64 where not given

    def dtype(self, i: int) -> str:
        return self.dtypes[i] if i < len(self.dtypes) else "float64"

    @property
    def default_dtypes(self) -> bool:
        return all(self.dtype(i) == "float64" for i in range(len(self.shapes)))

    @property
    def lists(self) -> bool:
        """Whether the operands survive ``tolist()`` (float64, no empty axis)."""
        return self.default_dtypes and all(0 not in s for s in self.shapes)

    @property
    def shape_function(self) -> str | None:
        """The shape function that takes the same arguments, if any."""
        if self.op not in SHAPE_FUNCTIONS or not self.default_dtypes:
            return None
        name, accepted = SHAPE_FUNCTIONS[self.op]
        return name if set(self.kwargs) <= accepted else None


# ---------------------------------------------------------------------------
# conv_transpose: NHWC input, HWIO kernel (the default layouts in 2-d)
# ---------------------------------------------------------------------------

TX = (2, 5, 5, 4)  # N H W C
TW = (3, 3, 4, 6)  # H W I O
TWT = (3, 3, 6, 4)  # the kernel for transpose_kernel=True: its O axis meets the lhs features


def _transpose_cases() -> list[Case]:
    def c(id, args, cls, message, rhs=TW, lhs=TX, dtypes=(), **kwargs):
        return Case(id, TRANSPOSE, (lhs, rhs), args, kwargs, cls, message, dtypes)

    S = ((2, 2), "SAME")
    strides = ints2("strides")
    transposed_pads = "padding must be 'SAME', 'VALID' or 2 (low, high) pairs when "
    return [
        # strides
        c("strides-zero", ((0, 1), "SAME"), ConvArgumentError, strides + "(0, 1)"),
        c("strides-negative", ((2, -1), "SAME"), ConvArgumentError, strides + "(2, -1)"),
        c("strides-short", ((2,), "SAME"), ConvArgumentError, strides + "(2,)"),
        c("strides-long", ((2, 2, 2), "SAME"), ConvArgumentError, strides + "(2, 2, 2)"),
        c("strides-list-zero", ([2, 0], "VALID"), ConvArgumentError, strides + "[2, 0]"),
        c("strides-float", ((2.0, 2), "SAME"), ConvTypeError, strides + "(2.0, 2)"),
        c("strides-bool", ((True, 2), "SAME"), ConvTypeError, strides + "(True, 2)"),
        c("strides-int", (2, "SAME"), ConvTypeError, strides + "2"),
        c("strides-none", (None, "SAME"), ConvTypeError, strides + "None"),
        # rhs_dilation
        c("rhs-dil-zero", S, ConvArgumentError, ints2("rhs_dilation") + "(1, 0)", rhs_dilation=(1, 0)),
        c("rhs-dil-short", S, ConvArgumentError, ints2("rhs_dilation") + "(2,)", rhs_dilation=(2,)),
        c("rhs-dil-float", S, ConvTypeError, ints2("rhs_dilation") + "(1.5, 1)", rhs_dilation=(1.5, 1)),
        # the two switches
        c("transpose-kernel-int", S, ConvTypeError, "transpose_kernel must be True or False; got 1",
          transpose_kernel=1),
        c("transpose-kernel-none", S, ConvTypeError, "transpose_kernel must be True or False; got None",
          transpose_kernel=None),
        c("transpose-kernel-str", S, ConvTypeError, "transpose_kernel must be True or False; got 'True'",
          transpose_kernel="True"),
        c("consistent-int", S, ConvTypeError, "use_consistent_padding must be True or False; got 0",
          use_consistent_padding=0),
        c("consistent-str", S, ConvTypeError, "use_consistent_padding must be True or False; got 'yes'",
          use_consistent_padding="yes"),
        # padding names
        c("pad-unknown-strided", ((2, 2), "FULL"), ConvArgumentError,
          transposed_pads + "strides are not 1 (strides=(2, 2)); got 'FULL'"),
        c("pad-same-lower-strided", ((2, 1), "SAME_LOWER"), ConvArgumentError,
          transposed_pads + "strides are not 1 (strides=(2, 1)); got 'SAME_LOWER'"),
        # as in JAX, the transposed-conv names are case-sensitive
        c("pad-lowercase-strided", ((1, 3), "same"), ConvArgumentError,
          transposed_pads + "strides are not 1 (strides=(1, 3)); got 'same'"),
        # strides of 1: any other string is the forward padding, checked as conv_general_dilated does
        c("pad-unknown-unit-strides", ((1, 1), "FULL"), ConvArgumentError,
          "padding must be one of 'SAME', 'SAME_LOWER', 'VALID' or 2 (low, high) pairs; got 'FULL'"),
        c("pad-same-lower-consistent", ((1, 1), "SAME_LOWER"), ConvArgumentError,
          transposed_pads + "use_consistent_padding is True; got 'SAME_LOWER'", use_consistent_padding=True),
        c("pad-unknown-consistent", ((2, 2), "FULL"), ConvArgumentError,
          transposed_pads + "use_consistent_padding is True; got 'FULL'", use_consistent_padding=True),
        # explicit pairs, both conventions
        c("pad-short", ((2, 2), [(0, 0)]), ConvArgumentError, pads(2) + "[(0, 0)]"),
        c("pad-short-consistent", ((2, 2), [(0, 0)]), ConvArgumentError, pads(2) + "[(0, 0)]",
          use_consistent_padding=True),
        c("pad-long", ((2, 2), [(0, 0)] * 3), ConvArgumentError, pads(2) + "[(0, 0), (0, 0), (0, 0)]"),
        c("pad-long-consistent", ((2, 2), [(1, 1)] * 3), ConvArgumentError, pads(2) + "[(1, 1), (1, 1), (1, 1)]",
          use_consistent_padding=True),
        c("pad-triple", ((2, 2), [(1, 2, 3), (0, 0)]), ConvArgumentError, pads(2) + "[(1, 2, 3), (0, 0)]"),
        c("pad-triple-consistent", ((2, 2), [(0, 0), (1, 2, 3)]), ConvArgumentError,
          pads(2) + "[(0, 0), (1, 2, 3)]", use_consistent_padding=True),
        c("pad-int", ((2, 2), 3), ConvTypeError, pads(2) + int_pad(3)),
        c("pad-int-consistent", ((2, 2), 3), ConvTypeError, pads(2) + int_pad(3), use_consistent_padding=True),
        c("pad-float-item", ((2, 2), [(1.0, 1), (0, 0)]), ConvTypeError, pads(2) + "[(1.0, 1), (0, 0)]"),
        c("pad-float-item-consistent", ((2, 2), [(1.0, 1), (0, 0)]), ConvTypeError,
          pads(2) + "[(1.0, 1), (0, 0)]", use_consistent_padding=True),
        c("pad-crop", ((2, 2), [(-10, -10), (0, 0)]), ConvShapeError,
          "padding crops more than spatial axis 0 holds (size 9 after lhs dilation); got ((-10, -10), (0, 0))"),
        # SHOULD: the value received is the forward padding [(10, 10), (0, 0)]; today the message shows
        # only the derived transposed padding ((-8, -8), (2, 2)), a value the caller never passed.
        c("should-pad-crop-consistent", ((2, 2), [(10, 10), (0, 0)]), ConvShapeError,
          "padding crops more than spatial axis 0 holds (size 9 after lhs dilation): as the forward "
          "convolution's padding (use_consistent_padding=True) it is the transposed padding "
          "((-8, -8), (2, 2)); got [(10, 10), (0, 0)]",
          use_consistent_padding=True),
        # ranks
        c("rank-rhs", S, ConvShapeError, "rhs must have the same rank as lhs (lhs shape (2, 5, 5, 4)); got (3, 3, 4)",
          rhs=(3, 3, 4)),
        c("rank-lhs", ((2,), "SAME"), ConvShapeError,
          "rhs must have the same rank as lhs (lhs shape (2, 5, 4)); got (3, 3, 4, 6)", lhs=(2, 5, 4)),
        c("rank-1", ((), "SAME"), ConvShapeError, "lhs must have rank >= 2 (batch and feature axes); got shape (4,)",
          lhs=(4,), rhs=(4,)),
        c("rank-0", ((), "SAME"), ConvShapeError, "lhs must have rank >= 2 (batch and feature axes); got shape ()",
          lhs=(), rhs=()),
        # channels: conv_transpose has no feature_group_count, so its message should not mention one
        c("should-channels", S, ConvShapeError,
          "rhs input feature size must equal the lhs feature size (4); got 3 (rhs shape (3, 3, 3, 6))",
          rhs=(3, 3, 3, 6)),
        # with transpose_kernel the kernel's O axis meets the lhs features; the message should say so and
        # show the kernel as given, not with its I and O axes already swapped
        c("should-channels-transpose-kernel", S, ConvShapeError,
          "rhs output feature size must equal the lhs feature size (4) when transpose_kernel is True; "
          "got 6 (rhs shape (3, 3, 4, 6))",
          rhs=TW, transpose_kernel=True),
        # dtypes
        c("dtype-mismatch", S, DtypeMismatchError,
          "rhs must have the same dtype as lhs (float32); got float64" + cast("float32", "float64"),
          dtypes=("float32", "float64")),
        c("dtype-mismatch-int", S, DtypeMismatchError,
          "rhs must have the same dtype as lhs (float64); got int64" + cast("float64", "int64"),
          dtypes=("float64", "int64")),
        c("pref-narrower", S, ConvTypeError,
          "preferred_element_type must not be narrower than the operands' dtype float64; got float32",
          preferred_element_type=np.float32),
        c("pref-narrower-int", S, ConvTypeError,
          "preferred_element_type must not be narrower than the operands' dtype int32; got int16",
          dtypes=("int32", "int32"), preferred_element_type="int16"),
        c("pref-incompatible", S, ConvTypeError, PREF_INCOMPATIBLE, preferred_element_type=np.int32),
        c("pref-not-a-dtype", S, ConvTypeError, "preferred_element_type must be None or a dtype; got 'nope'",
          preferred_element_type="nope"),
        c("precision", S, ConvArgumentError, PREC + "'ultra'", precision="ultra"),
        # the kernel window
        c("empty-window", S, ConvShapeError, EMPTY_WINDOW + "(0, 3, 4, 6)", rhs=(0, 3, 4, 6)),
        c("empty-window-consistent", ((2, 2), [(0, 0), (0, 0)]), ConvShapeError, EMPTY_WINDOW + "(3, 0, 4, 6)",
          rhs=(3, 0, 4, 6), use_consistent_padding=True),
        # SHOULD: the kernel as given, not with its I and O axes swapped
        c("should-empty-window-transpose-kernel", S, ConvShapeError, EMPTY_WINDOW + "(0, 3, 6, 4)",
          rhs=(0, 3, 6, 4), transpose_kernel=True),
        # dimension numbers
        c("dn-one-string", S, ConvTypeError, DN_TYPE + "'NHWC'", dimension_numbers="NHWC"),
        c("dn-short", S, ConvArgumentError,
          "dimension_numbers[0] must have one letter per operand axis (4 for shapes (2, 5, 5, 4) and "
          "(3, 3, 4, 6)); got 'NHW'", dimension_numbers=("NHW", "HWIO", "NHWC")),
        c("should-channels-dn", S, ConvShapeError,
          "rhs input feature size must equal the lhs feature size (5); got 4 (rhs shape (3, 3, 4, 6))",
          dimension_numbers=("NCHW", "HWIO", "NCHW")),
    ]


# ---------------------------------------------------------------------------
# conv_general_dilated_patches: NCHW input
# ---------------------------------------------------------------------------

PX = (2, 3, 6, 6)


def _patches_cases() -> list[Case]:
    def c(id, args, cls, message, lhs=PX, dtypes=(), **kwargs):
        return Case(id, PATCHES, (lhs,), args, kwargs, cls, message, dtypes)

    V = ((3, 3), (1, 1), "VALID")  # filter_shape, window_strides, padding
    fs = ints2("filter_shape")
    return [
        c("filter-short", ((3,), (1, 1), "VALID"), ConvArgumentError, fs + "(3,)"),
        c("filter-long", ((3, 3, 3), (1, 1), "VALID"), ConvArgumentError, fs + "(3, 3, 3)"),
        c("filter-zero", ((0, 3), (1, 1), "VALID"), ConvArgumentError, fs + "(0, 3)"),
        c("filter-negative", ((3, -1), (1, 1), "VALID"), ConvArgumentError, fs + "(3, -1)"),
        c("filter-float", ((3.0, 3), (1, 1), "VALID"), ConvTypeError, fs + "(3.0, 3)"),
        c("filter-bool", ((True, 3), (1, 1), "VALID"), ConvTypeError, fs + "(True, 3)"),
        c("filter-int", (3, (1, 1), "VALID"), ConvTypeError, fs + "3"),
        c("filter-none", (None, (1, 1), "VALID"), ConvTypeError, fs + "None"),
        c("rank-1", ((), (), "VALID"), ConvShapeError,
          "lhs must have rank >= 2 (batch and feature axes); got shape (3,)", lhs=(3,)),
        c("rank-0", ((), (), "VALID"), ConvShapeError, "lhs must have rank >= 2 (batch and feature axes); got shape ()",
          lhs=()),
        c("strides-zero", ((3, 3), (0, 1), "VALID"), ConvArgumentError, ints2("window_strides") + "(0, 1)"),
        c("strides-float", ((3, 3), (1, 1.0), "VALID"), ConvTypeError, ints2("window_strides") + "(1, 1.0)"),
        c("strides-short", ((3, 3), (1,), "VALID"), ConvArgumentError, ints2("window_strides") + "(1,)"),
        c("pad-name", ((3, 3), (1, 1), "FULL"), ConvArgumentError,
          "padding must be one of 'SAME', 'SAME_LOWER', 'VALID' or 2 (low, high) pairs; got 'FULL'"),
        c("pad-short", ((3, 3), (1, 1), [(1, 1)]), ConvArgumentError, pads(2) + "[(1, 1)]"),
        c("pad-int", ((3, 3), (1, 1), 1), ConvTypeError, pads(2) + int_pad(1)),
        c("pad-crop", ((3, 3), (1, 1), [(-4, -4), (0, 0)]), ConvShapeError,
          "padding crops more than spatial axis 0 holds (size 6 after lhs dilation); got ((-4, -4), (0, 0))"),
        c("pad-same-lhs-dil", ((3, 3), (1, 1), "SAME"), ConvArgumentError,
          "padding must be explicit (low, high) pairs when lhs_dilation is not 1 (lhs_dilation=(2, 1)); "
          "use conv_transpose for string padding; got 'SAME'", lhs_dilation=(2, 1)),
        c("lhs-dil-zero", V, ConvArgumentError, ints2("lhs_dilation") + "(0, 1)", lhs_dilation=(0, 1)),
        c("lhs-dil-float", V, ConvTypeError, ints2("lhs_dilation") + "(1.0, 1)", lhs_dilation=(1.0, 1)),
        c("rhs-dil-zero", V, ConvArgumentError, ints2("rhs_dilation") + "(1, 0)", rhs_dilation=(1, 0)),
        c("rhs-dil-long", V, ConvArgumentError, ints2("rhs_dilation") + "[1, 1, 1]", rhs_dilation=[1, 1, 1]),
        c("pref-incompatible", V, ConvTypeError, PREF_INCOMPATIBLE, preferred_element_type=np.int32),
        c("pref-complex", V, ConvTypeError, PREF_INCOMPATIBLE.replace("got int32", "got complex128"),
          preferred_element_type="complex128"),
        c("pref-narrower", V, ConvTypeError,
          "preferred_element_type must not be narrower than the operands' dtype float64; got float32",
          preferred_element_type="float32"),
        c("pref-unsigned", V, ConvTypeError,
          "preferred_element_type must not be unsigned for signed operands of dtype int8; got uint16",
          dtypes=("int8",), preferred_element_type=np.uint16),
        c("precision", V, ConvArgumentError, PREC + "'ultra'", precision="ultra"),
        c("dn-one-string", V, ConvTypeError, DN_TYPE + "'NCHW'", dimension_numbers="NCHW"),
        c("dn-spatial", V, ConvArgumentError,
          "dimension_numbers must name the same spatial letters in all three strings; got ('NCHW', 'OIHW', 'NCHX')",
          dimension_numbers=("NCHW", "OIHW", "NCHX")),
        # SHOULD: patches has no rhs; the message names a kernel shape (1, 1, 3, 3) the caller never passed
        c("should-dn-short", V, ConvArgumentError,
          "dimension_numbers[0] must have one letter per operand axis (4 for lhs shape (2, 3, 6, 6)); got 'NCH'",
          dimension_numbers=("NCH", "OIHW", "NCHW")),
    ]


# ---------------------------------------------------------------------------
# conv_general_dilated_local: NCHW input, (O, C * prod(filter_shape), *output positions) kernel
# ---------------------------------------------------------------------------

LX = (2, 3, 6, 6)
LW = (5, 27, 4, 4)  # 3 channels * 3 * 3 taps, 4 x 4 output positions for a 3 x 3 VALID window


def _local_cases() -> list[Case]:
    def c(id, args, cls, message, rhs=LW, lhs=LX, dtypes=(), **kwargs):
        return Case(id, LOCAL, (lhs, rhs), args, kwargs, cls, message, dtypes)

    V = ((1, 1), "VALID", (3, 3))  # window_strides, padding, filter_shape
    fs = ints2("filter_shape")

    def kernel(expected, patch, positions, got):
        return (
            f"rhs must have shape {expected}: its I axis is the patch (C * prod(filter_shape) = {patch}) and its "
            f"spatial axes are the output positions {positions}; got shape {got}"
        )

    return [
        c("rank-rhs-3", V, ConvShapeError,
          "rhs must have the same rank as lhs (lhs shape (2, 3, 6, 6)); got (5, 27, 4)", rhs=(5, 27, 4)),
        c("rank-rhs-5", V, ConvShapeError,
          "rhs must have the same rank as lhs (lhs shape (2, 3, 6, 6)); got (5, 27, 4, 4, 1)", rhs=(5, 27, 4, 4, 1)),
        c("rank-1", ((), "VALID", ()), ConvShapeError,
          "lhs must have rank >= 2 (batch and feature axes); got shape (3,)", lhs=(3,), rhs=(3,)),
        c("rhs-patch-size", V, ConvShapeError, kernel((5, 27, 4, 4), 27, (4, 4), (5, 26, 4, 4)), rhs=(5, 26, 4, 4)),
        c("rhs-patch-is-channels", V, ConvShapeError, kernel((5, 27, 4, 4), 27, (4, 4), (5, 3, 4, 4)),
          rhs=(5, 3, 4, 4)),
        c("rhs-positions", V, ConvShapeError, kernel((5, 27, 4, 4), 27, (4, 4), (5, 27, 4, 3)), rhs=(5, 27, 4, 3)),
        # a shared kernel's window in the spatial axes: the sizes of the input, not of the output
        c("rhs-input-positions", V, ConvShapeError, kernel((5, 27, 4, 4), 27, (4, 4), (5, 27, 6, 6)),
          rhs=(5, 27, 6, 6)),
        # a shared conv_general_dilated kernel (O, C, *filter_shape) passed by mistake
        c("rhs-shared-kernel", V, ConvShapeError, kernel((5, 27, 4, 4), 27, (4, 4), (5, 3, 3, 3)),
          rhs=(5, 3, 3, 3)),
        c("rhs-positions-strided", ((2, 2), "VALID", (3, 3)), ConvShapeError,
          kernel((5, 27, 2, 2), 27, (2, 2), (5, 27, 4, 4))),
        c("rhs-positions-same", ((1, 2), "SAME", (2, 3)), ConvShapeError,
          kernel((5, 18, 6, 3), 18, (6, 3), (5, 27, 4, 4))),
        # channels-last: the expected shape is in the caller's layout
        c("rhs-nhwc", V, ConvShapeError, kernel((4, 4, 27, 5), 27, (4, 4), (4, 4, 9, 5)),
          lhs=(2, 6, 6, 3), rhs=(4, 4, 9, 5), dimension_numbers=("NHWC", "HWIO", "NHWC")),
        c("dtype-mismatch", V, DtypeMismatchError,
          "rhs must have the same dtype as lhs (float64); got float32" + cast("float64", "float32"),
          dtypes=("float64", "float32")),
        c("dtype-mismatch-int", V, DtypeMismatchError,
          "rhs must have the same dtype as lhs (int32); got int64" + cast("int32", "int64"),
          dtypes=("int32", "int64")),
        c("filter-short", ((1, 1), "VALID", (3,)), ConvArgumentError, fs + "(3,)"),
        c("filter-zero", ((1, 1), "VALID", (0, 3)), ConvArgumentError, fs + "(0, 3)"),
        c("filter-float", ((1, 1), "VALID", (3.0, 3)), ConvTypeError, fs + "(3.0, 3)"),
        c("filter-none", ((1, 1), "VALID", None), ConvTypeError, fs + "None"),
        c("strides-zero", ((0, 1), "VALID", (3, 3)), ConvArgumentError, ints2("window_strides") + "(0, 1)"),
        c("pad-name", ((1, 1), "FULL", (3, 3)), ConvArgumentError,
          "padding must be one of 'SAME', 'SAME_LOWER', 'VALID' or 2 (low, high) pairs; got 'FULL'"),
        c("pad-short", ((1, 1), [(0, 0)], (3, 3)), ConvArgumentError, pads(2) + "[(0, 0)]"),
        c("rhs-dil-float", V, ConvTypeError, ints2("rhs_dilation") + "(2.0, 1)", rhs_dilation=(2.0, 1)),
        c("lhs-dil-zero", ((1, 1), [(0, 0), (0, 0)], (3, 3)), ConvArgumentError, ints2("lhs_dilation") + "(1, 0)",
          lhs_dilation=(1, 0)),
        c("precision", V, ConvArgumentError, PREC + "'ultra'", precision="ultra"),
        # SHOULD: the message names the caller's rhs (5, 27, 4, 4), not a made-up kernel (1, 1, 3, 3)
        c("should-dn-short", V, ConvArgumentError,
          "dimension_numbers[0] must have one letter per operand axis (4 for shapes (2, 3, 6, 6) and "
          "(5, 27, 4, 4)); got 'NCH'",
          dimension_numbers=("NCH", "OIHW", "NCHW")),
    ]


# ---------------------------------------------------------------------------
# conv_general_dilated_vjp
# ---------------------------------------------------------------------------

VX = (2, 4, 5, 5)
VW = (6, 4, 3, 3)
VG = (2, 6, 3, 3)  # the VALID output


def _vjp_cases() -> list[Case]:
    def c(id, args, cls, message, lhs=VX, rhs=VW, cot=VG, dtypes=(), **kwargs):
        return Case(id, VJP, (lhs, rhs, cot), args, kwargs, cls, message, dtypes)

    V = ((1, 1), "VALID")
    shape = "cotangent must have the shape of the convolution's output "
    return [
        c("cotangent-shape", V, ConvShapeError, shape + "(2, 6, 3, 3); got shape (2, 6, 3, 4)", cot=(2, 6, 3, 4)),
        c("cotangent-rank", V, ConvShapeError, shape + "(2, 6, 3, 3); got shape (2, 6, 3)", cot=(2, 6, 3)),
        c("cotangent-is-input-shape", ((2, 2), "SAME"), ConvShapeError, shape + "(2, 6, 3, 3); got shape (2, 6, 5, 5)",
          cot=(2, 6, 5, 5)),
        c("cotangent-lhs-features", V, ConvShapeError, shape + "(2, 6, 3, 3); got shape (2, 4, 3, 3)",
          cot=(2, 4, 3, 3)),
        c("cotangent-batch-groups", V, ConvShapeError, shape + "(1, 6, 3, 3); got shape (2, 6, 3, 3)",
          batch_group_count=2),
        c("cotangent-scalar", V, ConvShapeError, shape + "(2, 6, 3, 3); got shape ()", cot=()),
        c("cotangent-dtype", V, DtypeMismatchError,
          "cotangent must have the dtype of the convolution's output (float64); got float32. "
          "Cast the cotangent to float64 first",
          dtypes=("float64", "float64", "float32")),
        c("cotangent-dtype-preferred", V, DtypeMismatchError,
          "cotangent must have the dtype of the convolution's output (float32); got int32. "
          "Cast the cotangent to float32 first",
          dtypes=("int32", "int32", "int32"), preferred_element_type=np.float32),
        c("cotangent-dtype-int", V, DtypeMismatchError,
          "cotangent must have the dtype of the convolution's output (float64); got int64. "
          "Cast the cotangent to float64 first",
          dtypes=("float64", "float64", "int64")),
        # the forward arguments: the same checks as conv_general_dilated, under this op's name
        c("strides-zero", ((0, 1), "VALID"), ConvArgumentError, ints2("window_strides") + "(0, 1)"),
        c("strides-float", ((1, 1.0), "VALID"), ConvTypeError, ints2("window_strides") + "(1, 1.0)"),
        c("pad-name", ((1, 1), "FULL"), ConvArgumentError,
          "padding must be one of 'SAME', 'SAME_LOWER', 'VALID' or 2 (low, high) pairs; got 'FULL'"),
        c("pad-short", ((1, 1), [(0, 0)]), ConvArgumentError, pads(2) + "[(0, 0)]"),
        c("rhs-dil-zero", V, ConvArgumentError, ints2("rhs_dilation") + "(0, 1)", rhs_dilation=(0, 1)),
        c("channels", V, ConvShapeError,
          "rhs input feature size must equal the lhs feature size divided by feature_group_count "
          "(4 // 1 = 4); got 3 (rhs shape (6, 3, 3, 3))" + DEFAULT_LAYOUT_2D, rhs=(6, 3, 3, 3)),
        c("rank", V, ConvShapeError, "rhs must have the same rank as lhs (lhs shape (2, 4, 5, 5)); got (6, 4, 3)",
          rhs=(6, 4, 3)),
        c("fgc-zero", V, ConvArgumentError, "feature_group_count must be a positive integer; got 0",
          feature_group_count=0),
        c("both-groups", V, ConvArgumentError,
          "feature_group_count and batch_group_count cannot both be > 1; got feature_group_count=2, "
          "batch_group_count=2", rhs=(6, 2, 3, 3), feature_group_count=2, batch_group_count=2),
        c("dtype-mismatch", V, DtypeMismatchError,
          "rhs must have the same dtype as lhs (float32); got float64" + cast("float32", "float64"),
          dtypes=("float32", "float64", "float32")),
        c("pref-narrower", V, ConvTypeError,
          "preferred_element_type must not be narrower than the operands' dtype float64; got float32",
          dtypes=("float64", "float64", "float32"), preferred_element_type=np.float32),
        c("precision", V, ConvArgumentError, PREC + "'ultra'", precision="ultra"),
        c("empty-window", V, ConvShapeError, EMPTY_WINDOW + "(6, 4, 0, 3)", rhs=(6, 4, 0, 3)),
    ]


CASES = _transpose_cases() + _patches_cases() + _local_cases() + _vjp_cases()
# the vjp cases that are about the forward call only (the cotangent fits it)
VJP_FORWARD_CASES = [c for c in CASES if c.op == VJP and not c.message.startswith("cotangent")]


def _ids(case: Case) -> str:
    return f"{case.op}-{case.id}"


def _operands(case: Case) -> list[np.ndarray]:
    return [np.zeros(s, dtype=case.dtype(i)) for i, s in enumerate(case.shapes)]


def _call(case: Case, operands: list[Any]) -> Any:
    return getattr(polyconv, case.op)(*operands, *case.args, **case.kwargs)


def _check(exc: BaseException, case: Case, op: str | None = None) -> None:
    op = op or case.op
    assert type(exc) is case.cls, f"{type(exc).__name__}: {exc}"
    assert isinstance(exc, PolyconvError)
    for base in HIERARCHY[case.cls]:
        assert isinstance(exc, base)
    assert str(exc) == f"{op}: {case.message}"
    assert exc.op == op
    assert exc.param == case.message.split(" ", 1)[0]


@pytest.fixture
def backend_must_not_run(monkeypatch):
    """Every way an op can reach a backend raises: the error must come first."""

    def boom(*args, **kwargs):
        raise AssertionError("the backend ran on invalid input")

    be = polyconv.backends.numpy.backend
    for name in ("conv_general_dilated", TRANSPOSE, PATCHES, LOCAL, VJP):
        monkeypatch.setattr(be, name, boom, raising=False)
    for name in ("conv_transpose", "patches", "local", "vjp_lhs", "vjp_rhs"):
        monkeypatch.setattr(polyconv.derive, name, boom)
    monkeypatch.setattr(be, "runner", lambda op, spec: boom)  # the per-spec fast paths too
    polyconv.ops.calls.clear()  # no runner cached by an earlier valid call
    yield
    polyconv.ops.calls.clear()


# ---------------------------------------------------------------------------
# the table, three ways
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_bad_call_numpy(case, backend_must_not_run):
    with pytest.raises(case.cls, match=re.escape(f"{case.op}: {case.message}")) as info:
        _call(case, _operands(case))
    _check(info.value, case)


@pytest.mark.parametrize("case", [c for c in CASES if c.lists], ids=_ids)
def test_bad_call_lists_same_as_numpy(case, backend_must_not_run):
    """Python lists become float64 NumPy arrays: same class, same message."""
    arrays = _operands(case)
    with pytest.raises(PolyconvError) as info:
        _call(case, [a.tolist() for a in arrays])
    _check(info.value, case)
    # the first operand a list, the others arrays
    with pytest.raises(PolyconvError) as info:
        _call(case, [arrays[0].tolist(), *arrays[1:]])
    _check(info.value, case)


@pytest.mark.parametrize("case", [c for c in CASES if c.shape_function], ids=_ids)
def test_bad_call_shape_function(case):
    name = case.shape_function
    with pytest.raises(PolyconvError) as info:
        getattr(polyconv, name)(*case.shapes, *case.args, **case.kwargs)
    _check(info.value, case, op=name)


@pytest.mark.parametrize("case", VJP_FORWARD_CASES, ids=_ids)
def test_vjp_forward_errors_match_conv_general_dilated(case, backend_must_not_run):
    """A forward argument that conv_general_dilated refuses, the vjp refuses the same way."""
    lhs, rhs, _ = _operands(case)
    with pytest.raises(PolyconvError) as info:
        polyconv.conv_general_dilated(lhs, rhs, *case.args, **case.kwargs)
    _check(info.value, case, op="conv_general_dilated")


def test_table_covers_every_op():
    assert {c.op for c in CASES} == {TRANSPOSE, PATCHES, LOCAL, VJP}
    assert len({_ids(c) for c in CASES}) == len(CASES)
    for op, (name, _) in SHAPE_FUNCTIONS.items():
        assert any(c.shape_function == name for c in CASES if c.op == op)


VALID = {
    TRANSPOSE: lambda: polyconv.conv_transpose(np.ones((1, 3, 2)), np.ones((2, 2, 1)), (2,), "SAME"),
    PATCHES: lambda: polyconv.conv_general_dilated_patches(np.ones((1, 2, 4)), (2,), (1,), "VALID"),
    LOCAL: lambda: polyconv.conv_general_dilated_local(np.ones((1, 2, 4)), np.ones((1, 4, 3)), (1,), "VALID", (2,)),
    VJP: lambda: polyconv.conv_general_dilated_vjp(
        np.ones((1, 2, 4)), np.ones((1, 2, 2)), np.ones((1, 1, 3)), (1,), "VALID"),
}


@pytest.mark.parametrize("op", list(VALID))
def test_backend_patch_is_effective(op, backend_must_not_run):
    """The fixture does intercept the backend: a valid call reaches it."""
    with pytest.raises(AssertionError, match="the backend ran"):
        VALID[op]()


def test_every_argument_wrong_reports_one_error_before_the_backend(backend_must_not_run):
    x, w = np.ones((2, 5, 5, 4)), np.ones((3, 3, 4, 6))
    with pytest.raises(PolyconvError):
        polyconv.conv_transpose(x, w, (0, 0), "FULL", (0, 0), ("A", "B", "C"), 2, "ultra", "nope", 3)
    with pytest.raises(PolyconvError):
        polyconv.conv_general_dilated_patches(x, (0,), (0,), "FULL", (0,), (0,), "NHWC", "ultra", "nope")
    with pytest.raises(PolyconvError):
        polyconv.conv_general_dilated_local(x, w, (0,), "FULL", (0,), (0,), (0,), "NHWC", "ultra")
    with pytest.raises(PolyconvError):
        polyconv.conv_general_dilated_vjp(x, w, x, (0,), "FULL", (0,), (0,), "NHWC", 0, 0, "ultra", "nope")


# ---------------------------------------------------------------------------
# the switches of conv_transpose: a bool-equal value is not let through by the parse cache
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("param, value", [("transpose_kernel", 1), ("transpose_kernel", 0),
                                          ("use_consistent_padding", 1), ("use_consistent_padding", 0)])
def test_switch_rejected_after_the_equal_valid_call(param, value):
    x, w = np.zeros((1, 4, 2)), np.zeros((3, 2, 2))
    polyconv.conv_transpose(x, w, (2,), "SAME", **{param: bool(value)})
    polyconv.conv_transpose_shape(x.shape, w.shape, (2,), "SAME", **{param: bool(value)})
    with pytest.raises(ConvTypeError) as info:
        polyconv.conv_transpose(x, w, (2,), "SAME", **{param: value})
    assert str(info.value) == f"conv_transpose: {param} must be True or False; got {value}"
    with pytest.raises(ConvTypeError) as info:
        polyconv.conv_transpose_shape(x.shape, w.shape, (2,), "SAME", **{param: value})
    assert str(info.value) == f"conv_transpose_shape: {param} must be True or False; got {value}"


@pytest.mark.parametrize("param", ["transpose_kernel", "use_consistent_padding"])
def test_should_accept_numpy_bools_as_switches(param):
    """SHOULD: a NumPy bool is a bool (JAX takes any truthy value; polyconv's integer
    parameters take NumPy integers).  Today ``np.True_`` is refused with
    ``ConvTypeError: conv_transpose: transpose_kernel must be True or False; got np.True_``."""
    x, w = np.arange(3.0).reshape(1, 3, 1), np.array([1.0, 10.0]).reshape(2, 1, 1)
    expected = polyconv.conv_transpose(x, w, (2,), "SAME", **{param: True})
    np.testing.assert_array_equal(polyconv.conv_transpose(x, w, (2,), "SAME", **{param: np.True_}), expected)


# ---------------------------------------------------------------------------
# valid calls that JAX refuses or that look odd: accepted
# ---------------------------------------------------------------------------


def _transpose_scatter(x: np.ndarray, w: np.ndarray, strides: tuple[int, ...]) -> np.ndarray:
    """Independent reference for ``conv_transpose(x, w, strides, 'VALID', transpose_kernel=True)``
    in channels-last layout, strides <= kernel: every input element scatters the kernel
    ``w[*k, o, c]`` to the outputs ``s * i + k``."""
    n, *space, _ = x.shape
    *window, o, _ = w.shape
    out = np.zeros((n, *((i - 1) * s + k for i, s, k in zip(space, strides, window)), o))
    for ks in itertools.product(*(range(k) for k in window)):
        idx = tuple(slice(k, k + (i - 1) * s + 1, s) for k, i, s in zip(ks, space, strides))
        out[(slice(None), *idx, slice(None))] += np.einsum("n...c,oc->n...o", x, w[ks])
    return out


def test_transpose_four_spatial_dims_default_layout():
    """JAX has no default layout past 3 spatial dims; polyconv goes on channels-last
    (``NabcdC``, ``abcdIO``)."""
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (2, 3, 2, 3, 2, 3)).astype(np.float64)  # N a b c d C
    w = rng.integers(-3, 4, (2, 2, 2, 2, 4, 3)).astype(np.float64)  # a b c d I O  (I: 4 out features here)
    strides = (2, 1, 2, 1)
    y = polyconv.conv_transpose(x, w, strides, "VALID", transpose_kernel=True)
    assert y.shape == (2, 6, 3, 6, 3, 4)
    assert polyconv.conv_transpose_shape(x.shape, w.shape, strides, "VALID", transpose_kernel=True) == y.shape
    # the same call with the layouts spelled out
    explicit = polyconv.conv_transpose(x, w, strides, "VALID", dimension_numbers=("NabcdC", "abcdIO", "NabcdC"),
                                       transpose_kernel=True)
    np.testing.assert_array_equal(y, explicit)
    # channels-first, through other letters
    xf, wf = np.moveaxis(x, -1, 1), np.moveaxis(w, (-1, -2), (0, 1))  # N C a b c d and O I a b c d
    first = polyconv.conv_transpose(xf, wf, strides, "VALID", dimension_numbers=("NCpqrs", "OIpqrs", "NCpqrs"),
                                    transpose_kernel=True)
    np.testing.assert_array_equal(np.moveaxis(first, 1, -1), y)
    # and the definition: each input element scatters the kernel
    np.testing.assert_allclose(y, _transpose_scatter(x, w, strides), rtol=0, atol=1e-12)
    # SAME and explicit padding with the default layout too
    same = polyconv.conv_transpose(x, w[..., :3, :], strides, "SAME")
    assert same.shape == (2, 6, 2, 6, 2, 3)
    same_explicit = polyconv.conv_transpose(x, w[..., :3, :], strides, "SAME",
                                            dimension_numbers=("NabcdC", "abcdIO", "NabcdC"))
    np.testing.assert_array_equal(same, same_explicit)


@pytest.mark.parametrize("padding", ["SAME_LOWER", "same", "valid", [(1, 0)]])
def test_transpose_unit_strides_take_forward_padding(padding):
    """With strides of 1, JAX passes any other padding through to the forward
    convolution: 'SAME_LOWER' and lower-case names are accepted."""
    x, w = np.arange(5.0).reshape(1, 5, 1), np.array([1.0, 2.0]).reshape(2, 1, 1)
    y = polyconv.conv_transpose(x, w, (1,), padding)
    expected = polyconv.conv_general_dilated(x, w, (1,), padding, dimension_numbers=("NHC", "HIO", "NHC"))
    np.testing.assert_array_equal(y, expected)


def test_transpose_kernel_takes_the_swapped_kernel():
    x = np.ones((2, 5, 5, 4))
    assert polyconv.conv_transpose(x, np.ones(TWT), (2, 2), "SAME", transpose_kernel=True).shape == (2, 10, 10, 6)
    assert polyconv.conv_transpose(x, np.ones(TW), (2, 2), "SAME").shape == (2, 10, 10, 6)


# ---------------------------------------------------------------------------
# inputs are left alone
# ---------------------------------------------------------------------------


def _valid_calls():
    rng = np.random.default_rng(0)

    def a(*shape):
        return rng.integers(-5, 6, size=shape)

    return [
        pytest.param(TRANSPOSE, (a(2, 4, 3, 3), a(3, 2, 3, 5)), ((2, 1), "SAME"), {}, id="transpose-same"),
        pytest.param(TRANSPOSE, (a(2, 4, 3, 3), a(3, 2, 5, 3)), ((2, 2), [(1, 0), (0, 2)]),
                     dict(transpose_kernel=True, use_consistent_padding=True, rhs_dilation=(1, 2)),
                     id="transpose-kernel-consistent"),
        pytest.param(TRANSPOSE, (a(2, 3, 5), a(4, 3, 2)), ((3,), "VALID"),
                     dict(dimension_numbers=("NCW", "OIW", "NCW")), id="transpose-nchw"),
        pytest.param(PATCHES, (a(2, 3, 6, 5),), ((3, 2), (2, 1), "SAME"), dict(rhs_dilation=(1, 2)),
                     id="patches-same"),
        pytest.param(PATCHES, (a(2, 6, 5, 3),), ((2, 2), (1, 1), [(1, -1), (0, 2)]),
                     dict(lhs_dilation=(2, 1), dimension_numbers=("NHWC", "HWIO", "NHWC")), id="patches-nhwc"),
        pytest.param(LOCAL, (a(2, 3, 6, 5), a(4, 18, 3, 5)), ((2, 1), "SAME", (3, 2)), {}, id="local-same"),
        pytest.param(LOCAL, (a(2, 5, 3), a(4, 6, 5)), ((1,), "VALID", (2,)),
                     dict(dimension_numbers=("NWC", "WIO", "NWC")), id="local-nwc"),
        pytest.param(VJP, (a(2, 4, 5, 5), a(6, 2, 3, 2), a(2, 6, 3, 5)), ((2, 1), "SAME"),
                     dict(feature_group_count=2), id="vjp-groups"),
        pytest.param(VJP, (a(4, 3, 6), a(6, 3, 2), a(2, 6, 12)), ((1,), [(1, 1)]),
                     dict(lhs_dilation=(2,), batch_group_count=2), id="vjp-batch-groups"),
    ]


@pytest.mark.parametrize("dtype", ["float32", "int32"])
@pytest.mark.parametrize("op, arrays, args, kwargs", _valid_calls())
def test_inputs_not_modified(op, arrays, args, kwargs, dtype):
    arrays = [x.astype(dtype) for x in arrays]
    before = [x.copy() for x in arrays]
    fn = getattr(polyconv, op)
    result = fn(*arrays, *args, **kwargs)
    outputs = result if isinstance(result, tuple) else (result,)
    for b, x in zip(before, arrays):
        assert x.dtype == b.dtype and x.shape == b.shape
        np.testing.assert_array_equal(x, b)
    for y in outputs:
        assert isinstance(y, np.ndarray)
        assert not any(np.shares_memory(y, x) for x in arrays)

    # read-only operands work (nothing writes into them) and give the same result
    for x in arrays:
        x.flags.writeable = False
    again = fn(*arrays, *args, **kwargs)
    again = again if isinstance(again, tuple) else (again,)
    for y, z in zip(outputs, again):
        np.testing.assert_array_equal(z, y)


def test_list_inputs_and_arguments_not_modified():
    lhs = np.arange(30.0).reshape(1, 15, 2).tolist()  # N W C
    rhs = [[[1.0, -1.0, 2.0], [0.5, 2.0, 0.0]], [[0.0, 1.0, 1.0], [1.0, 0.0, -1.0]]]  # W I O
    strides, padding, dn, filt = [2], [[1, 0]], ["NWC", "WIO", "NWC"], [2]
    args = (lhs, rhs, strides, padding, dn, filt)
    before = copy.deepcopy(args)

    polyconv.conv_transpose(lhs, rhs, strides, padding, dimension_numbers=dn, use_consistent_padding=True)
    polyconv.conv_general_dilated_patches(lhs, filt, strides, padding, dimension_numbers=dn)
    out_w = polyconv.conv_general_dilated_patches_shape((1, 15, 2), filt, strides, padding, dimension_numbers=dn)[1]
    local_rhs = np.ones((out_w, 4, 3)).tolist()
    local_before = copy.deepcopy(local_rhs)
    polyconv.conv_general_dilated_local(lhs, local_rhs, strides, padding, filt, dimension_numbers=dn)
    y = polyconv.conv_general_dilated(lhs, rhs, strides, padding, dimension_numbers=dn)
    g = np.ones(y.shape).tolist()
    g_before = copy.deepcopy(g)
    polyconv.conv_general_dilated_vjp(lhs, rhs, g, strides, padding, dimension_numbers=dn)
    assert args == before
    assert local_rhs == local_before
    assert g == g_before

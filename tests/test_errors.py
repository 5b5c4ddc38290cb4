"""Every invalid argument raises a polyconv error before any backend runs,
naming the parameter and the value; the same class and message whether the
operands are NumPy arrays or Python lists, and from ``conv_general_shape``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import polyconv.backends.numpy
import pytest

import polyconv
import polyconv.ops
from polyconv import (
    BackendNotFoundError,
    BackendUnavailableError,
    ConvArgumentError,
    ConvDimensionNumbers,
    ConvShapeError,
    ConvTypeError,
    MixedArraysError,
    PolyconvError,
    UnsupportedDtypeError,
    UnsupportedFeatureError,
)
from polyconv.errors import DtypeMismatchError, OutputTooLargeError

OP = "conv_general_dilated"
TORCH_REASON = "torch is not installed: mixing a torch tensor with a NumPy array needs it"

# ---------------------------------------------------------------------------
# the classes
# ---------------------------------------------------------------------------

HIERARCHY = {
    ConvArgumentError: (ValueError,),
    ConvTypeError: (TypeError,),
    ConvShapeError: (ValueError, TypeError),
    DtypeMismatchError: (ConvTypeError, TypeError),
    UnsupportedDtypeError: (TypeError,),
    UnsupportedFeatureError: (NotImplementedError,),
    BackendNotFoundError: (LookupError,),
    BackendUnavailableError: (ImportError,),
    MixedArraysError: (TypeError,),
    OutputTooLargeError: (MemoryError,),
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


@pytest.mark.parametrize("cls", list(HIERARCHY), ids=lambda c: c.__name__)
def test_error_classes_subclass_the_builtins_users_catch(cls):
    assert issubclass(cls, PolyconvError)
    for base in HIERARCHY[cls]:
        assert issubclass(cls, base)
    assert getattr(polyconv.errors, cls.__name__) is cls
    assert getattr(polyconv, cls.__name__) is cls


def test_argument_errors_keep_their_parts():
    exc = ConvArgumentError("op", "window_strides", "must be positive", (1, 0))
    assert (exc.op, exc.param, exc.value) == ("op", "window_strides", (1, 0))
    assert str(exc) == "op: window_strides must be positive; got (1, 0)"
    assert str(ConvTypeError("op", "lhs", "must be an array", got="a str")) == "op: lhs must be an array; got a str"
    assert str(ConvShapeError("op", "rhs", "is odd")) == "op: rhs is odd"


# ---------------------------------------------------------------------------
# the table of bad calls
# ---------------------------------------------------------------------------

X = (2, 4, 5, 5)  # N C H W
W = (6, 4, 3, 3)  # O I H W


@dataclass
class Case:
    id: str
    lhs: tuple[int, ...]
    rhs: tuple[int, ...]
    args: tuple[Any, ...]  # window_strides, padding
    kwargs: dict[str, Any]
    cls: type
    message: str  # without the "op: " prefix
    lhs_dtype: str = "float64"
    rhs_dtype: str | None = None

    @property
    def shape_only(self) -> bool:
        """Whether conv_general_shape takes the same arguments (no dtypes, no precision)."""
        return (
            self.lhs_dtype == "float64"
            and self.rhs_dtype is None
            and not {"precision", "preferred_element_type"} & set(self.kwargs)
        )


def _cases() -> list[Case]:
    V = ((1, 1), "VALID")
    Z = ((1, 1), [(0, 0), (0, 0)])
    strides_msg = "window_strides must be a sequence of 2 positive integers; got "
    pad_msg = "padding must be a padding name or a sequence of 2 (low, high) integer pairs; got "
    prec_msg = (
        "precision must be None, one of 'default', 'high', 'highest', a jax.lax.Precision, or a pair of them; got "
    )
    dn_type_msg = (
        "dimension_numbers must be None, a ConvDimensionNumbers or three strings such as "
        "('NCHW', 'OIHW', 'NCHW'); got "
    )
    c = [
        # ranks
        Case("rank-differs", X, (6, 4, 3), ((1, 1), "VALID"), {}, ConvShapeError,
             "rhs must have the same rank as lhs (lhs shape (2, 4, 5, 5)); got (6, 4, 3)"),
        Case("rank-differs-2", (2, 4, 5), W, ((1,), "VALID"), {}, ConvShapeError,
             "rhs must have the same rank as lhs (lhs shape (2, 4, 5)); got (6, 4, 3, 3)"),
        Case("rank-1", (3,), (3,), ((), "VALID"), {}, ConvShapeError,
             "lhs must have rank >= 2 (batch and feature axes); got shape (3,)"),
        Case("rank-0", (), (), ((), "VALID"), {}, ConvShapeError,
             "lhs must have rank >= 2 (batch and feature axes); got shape ()"),
        # channels and groups
        Case("channels", X, (6, 3, 3, 3), V, {}, ConvShapeError,
             "rhs input feature size must equal the lhs feature size divided by feature_group_count "
             "(4 // 1 = 4); got 3 (rhs shape (6, 3, 3, 3))" + DEFAULT_LAYOUT_2D),
        Case("channels-grouped", X, W, V, dict(feature_group_count=2), ConvShapeError,
             "rhs input feature size must equal the lhs feature size divided by feature_group_count "
             "(4 // 2 = 2); got 4 (rhs shape (6, 4, 3, 3))" + DEFAULT_LAYOUT_2D),
        Case("channels-nhwc", (2, 5, 5, 4), (3, 3, 3, 6), V,
             dict(dimension_numbers=("NHWC", "HWIO", "NHWC")), ConvShapeError,
             "rhs input feature size must equal the lhs feature size divided by feature_group_count "
             "(4 // 1 = 4); got 3 (rhs shape (3, 3, 3, 6))"),
        Case("fgc-lhs-features", X, (6, 1, 3, 3), V, dict(feature_group_count=3), ConvShapeError,
             "feature_group_count must divide the lhs feature size 4; got 3"),
        Case("fgc-rhs-out", X, (3, 2, 3, 3), V, dict(feature_group_count=2), ConvShapeError,
             "feature_group_count must divide the rhs output feature size 3; got 2"),
        Case("bgc-batch", (3, 4, 5, 5), W, V, dict(batch_group_count=2), ConvShapeError,
             "batch_group_count must divide the lhs batch size 3; got 2"),
        Case("bgc-rhs-out", X, (3, 4, 3, 3), V, dict(batch_group_count=2), ConvShapeError,
             "batch_group_count must divide the rhs output feature size 3; got 2"),
        Case("both-groups", X, (6, 2, 3, 3), V, dict(feature_group_count=2, batch_group_count=2),
             ConvArgumentError,
             "feature_group_count and batch_group_count cannot both be > 1; "
             "got feature_group_count=2, batch_group_count=2"),
        Case("fgc-float", X, W, V, dict(feature_group_count=2.0), ConvTypeError,
             "feature_group_count must be a positive integer; got 2.0"),
        Case("fgc-bool", X, W, V, dict(feature_group_count=True), ConvTypeError,
             "feature_group_count must be a positive integer; got True"),
        Case("fgc-str", X, W, V, dict(feature_group_count="2"), ConvTypeError,
             "feature_group_count must be a positive integer; got '2'"),
        Case("fgc-none", X, W, V, dict(feature_group_count=None), ConvTypeError,
             "feature_group_count must be a positive integer; got None"),
        Case("fgc-zero", X, W, V, dict(feature_group_count=0), ConvArgumentError,
             "feature_group_count must be a positive integer; got 0"),
        Case("fgc-negative", X, W, V, dict(feature_group_count=-2), ConvArgumentError,
             "feature_group_count must be a positive integer; got -2"),
        Case("bgc-float", X, W, V, dict(batch_group_count=1.5), ConvTypeError,
             "batch_group_count must be a positive integer; got 1.5"),
        Case("bgc-zero", X, W, V, dict(batch_group_count=0), ConvArgumentError,
             "batch_group_count must be a positive integer; got 0"),
        Case("bgc-negative", X, W, V, dict(batch_group_count=-1), ConvArgumentError,
             "batch_group_count must be a positive integer; got -1"),
        # dimension_numbers strings
        Case("dn-missing-N", X, W, V, dict(dimension_numbers=("XCHW", "OIHW", "NCHW")), ConvArgumentError,
             "dimension_numbers[0] must contain the letters 'N' and 'C' exactly once; got 'XCHW'"),
        Case("dn-missing-C", X, W, V, dict(dimension_numbers=("NHWX", "HWIO", "NHWC")), ConvArgumentError,
             "dimension_numbers[0] must contain the letters 'N' and 'C' exactly once; got 'NHWX'"),
        Case("dn-missing-I", X, W, V, dict(dimension_numbers=("NCHW", "OXHW", "NCHW")), ConvArgumentError,
             "dimension_numbers[1] must contain the letters 'O' and 'I' exactly once; got 'OXHW'"),
        Case("dn-out-missing-N", X, W, V, dict(dimension_numbers=("NCHW", "OIHW", "CHWX")), ConvArgumentError,
             "dimension_numbers[2] must contain the letters 'N' and 'C' exactly once; got 'CHWX'"),
        Case("dn-double-N", X, W, V, dict(dimension_numbers=("NNHW", "OIHW", "NCHW")), ConvArgumentError,
             "dimension_numbers[0] must contain the letters 'N' and 'C' exactly once; got 'NNHW'"),
        Case("dn-duplicate", X, W, V, dict(dimension_numbers=("NCHH", "OIHW", "NCHW")), ConvArgumentError,
             "dimension_numbers[0] must not repeat a letter; got 'NCHH'"),
        Case("dn-duplicate-rhs", X, W, V, dict(dimension_numbers=("NCHW", "OIWW", "NCHW")), ConvArgumentError,
             "dimension_numbers[1] must not repeat a letter; got 'OIWW'"),
        Case("dn-short", X, W, V, dict(dimension_numbers=("NCH", "OIHW", "NCHW")), ConvArgumentError,
             "dimension_numbers[0] must have one letter per operand axis (4 for shapes (2, 4, 5, 5) and "
             "(6, 4, 3, 3)); got 'NCH'"),
        Case("dn-long", X, W, V, dict(dimension_numbers=("NCHW", "OIHW", "NCHWD")), ConvArgumentError,
             "dimension_numbers[2] must have one letter per operand axis (4 for shapes (2, 4, 5, 5) and "
             "(6, 4, 3, 3)); got 'NCHWD'"),
        Case("dn-spatial-rhs", X, W, V, dict(dimension_numbers=("NCHW", "OIHX", "NCHW")), ConvArgumentError,
             "dimension_numbers must name the same spatial letters in all three strings; "
             "got ('NCHW', 'OIHX', 'NCHW')"),
        Case("dn-spatial-out", X, W, V, dict(dimension_numbers=["NHWC", "HWIO", "NXYC"]), ConvArgumentError,
             "dimension_numbers must name the same spatial letters in all three strings; "
             "got ('NHWC', 'HWIO', 'NXYC')"),
        Case("dn-one-string", X, W, V, dict(dimension_numbers="NCHW"), ConvTypeError, dn_type_msg + "'NCHW'"),
        Case("dn-two-strings", X, W, V, dict(dimension_numbers=("NCHW", "OIHW")), ConvTypeError,
             dn_type_msg + "('NCHW', 'OIHW')"),
        Case("dn-none-inside", X, W, V, dict(dimension_numbers=("NCHW", "OIHW", None)), ConvTypeError,
             dn_type_msg + "('NCHW', 'OIHW', None)"),
        # dimension_numbers index triples
        Case("dn-not-permutation", X, W, V,
             dict(dimension_numbers=ConvDimensionNumbers((0, 1, 2, 2), (0, 1, 2, 3), (0, 1, 2, 3))),
             ConvArgumentError, "dimension_numbers[0] must be a permutation of range(4); got (0, 1, 2, 2)"),
        Case("dn-too-short", X, W, V, dict(dimension_numbers=((0, 1, 2, 3), (0, 1, 2), (0, 1, 2, 3))),
             ConvArgumentError, "dimension_numbers[1] must be a permutation of range(4); got (0, 1, 2)"),
        Case("dn-out-of-range", X, W, V, dict(dimension_numbers=[[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 4]]),
             ConvArgumentError, "dimension_numbers[2] must be a permutation of range(4); got (0, 1, 2, 4)"),
        Case("dn-float-index", X, W, V, dict(dimension_numbers=((0, 1, 2.0, 3), (0, 1, 2, 3), (0, 1, 2, 3))),
             ConvTypeError, "dimension_numbers[0] must be a tuple of axis indices; got (0, 1, 2.0, 3)"),
        # window_strides
        Case("strides-zero", X, W, ((1, 0), "VALID"), {}, ConvArgumentError, strides_msg + "(1, 0)"),
        Case("strides-negative", X, W, ((-1, 1), "VALID"), {}, ConvArgumentError, strides_msg + "(-1, 1)"),
        Case("strides-short", X, W, ((1,), "VALID"), {}, ConvArgumentError, strides_msg + "(1,)"),
        Case("strides-long", X, W, ((1, 1, 1), "VALID"), {}, ConvArgumentError, strides_msg + "(1, 1, 1)"),
        Case("strides-list", X, W, ([2, 0], "VALID"), {}, ConvArgumentError, strides_msg + "[2, 0]"),
        Case("strides-float", X, W, ((1.0, 1), "VALID"), {}, ConvTypeError, strides_msg + "(1.0, 1)"),
        Case("strides-bool", X, W, ((True, 1), "VALID"), {}, ConvTypeError, strides_msg + "(True, 1)"),
        Case("strides-int", X, W, (1, "VALID"), {}, ConvTypeError, strides_msg + "1"),
        Case("strides-none", X, W, (None, "VALID"), {}, ConvTypeError, strides_msg + "None"),
        Case("strides-str", X, W, ("11", "VALID"), {}, ConvTypeError, strides_msg + "'11'"),
        # lhs_dilation and rhs_dilation
        Case("lhs-dil-zero", X, W, Z, dict(lhs_dilation=(0, 1)), ConvArgumentError,
             "lhs_dilation must be a sequence of 2 positive integers; got (0, 1)"),
        Case("lhs-dil-negative", X, W, Z, dict(lhs_dilation=(1, -2)), ConvArgumentError,
             "lhs_dilation must be a sequence of 2 positive integers; got (1, -2)"),
        Case("lhs-dil-short", X, W, Z, dict(lhs_dilation=(2,)), ConvArgumentError,
             "lhs_dilation must be a sequence of 2 positive integers; got (2,)"),
        Case("lhs-dil-float", X, W, Z, dict(lhs_dilation=(2.0, 1)), ConvTypeError,
             "lhs_dilation must be a sequence of 2 positive integers; got (2.0, 1)"),
        Case("lhs-dil-bool", X, W, Z, dict(lhs_dilation=(True, True)), ConvTypeError,
             "lhs_dilation must be a sequence of 2 positive integers; got (True, True)"),
        Case("lhs-dil-int", X, W, Z, dict(lhs_dilation=2), ConvTypeError,
             "lhs_dilation must be a sequence of 2 positive integers; got 2"),
        Case("rhs-dil-zero", X, W, V, dict(rhs_dilation=(1, 0)), ConvArgumentError,
             "rhs_dilation must be a sequence of 2 positive integers; got (1, 0)"),
        Case("rhs-dil-long", X, W, V, dict(rhs_dilation=[1, 1, 1]), ConvArgumentError,
             "rhs_dilation must be a sequence of 2 positive integers; got [1, 1, 1]"),
        Case("rhs-dil-float", X, W, V, dict(rhs_dilation=(1, 1.5)), ConvTypeError,
             "rhs_dilation must be a sequence of 2 positive integers; got (1, 1.5)"),
        Case("rhs-dil-bool", X, W, V, dict(rhs_dilation=(False, 1)), ConvTypeError,
             "rhs_dilation must be a sequence of 2 positive integers; got (False, 1)"),
        # padding
        Case("pad-short", X, W, ((1, 1), [(0, 0)]), {}, ConvArgumentError, pad_msg + "[(0, 0)]"),
        Case("pad-long", X, W, ((1, 1), [(0, 0)] * 3), {}, ConvArgumentError, pad_msg + "[(0, 0), (0, 0), (0, 0)]"),
        Case("pad-int", X, W, ((1, 1), 3), {}, ConvTypeError, pad_msg + int_pad(3)),
        Case("pad-none", X, W, ((1, 1), None), {}, ConvTypeError, pad_msg + "None"),
        Case("pad-triple", X, W, ((1, 1), [(1, 2, 3), (0, 0)]), {}, ConvArgumentError,
             pad_msg + "[(1, 2, 3), (0, 0)]"),
        Case("pad-one-triple", X, W, ((1, 1), [(1, 2, 3)]), {}, ConvArgumentError, pad_msg + "[(1, 2, 3)]"),
        Case("pad-flat", X, W, ((1, 1), (1, 2)), {}, ConvTypeError, pad_msg + "(1, 2)"),
        Case("pad-str-item", X, W, ((1, 1), [("a", 1), (0, 0)]), {}, ConvTypeError, pad_msg + "[('a', 1), (0, 0)]"),
        Case("pad-float-item", X, W, ((1, 1), [(1.0, 1), (0, 0)]), {}, ConvTypeError,
             pad_msg + "[(1.0, 1), (0, 0)]"),
        Case("pad-bool-item", X, W, ((1, 1), [(0, 0), (True, 0)]), {}, ConvTypeError,
             pad_msg + "[(0, 0), (True, 0)]"),
        Case("pad-none-item", X, W, ((1, 1), [(0, 0), None]), {}, ConvTypeError, pad_msg + "[(0, 0), None]"),
        Case("pad-name", X, W, ((1, 1), "FULL"), {}, ConvArgumentError,
             "padding must be one of 'SAME', 'SAME_LOWER', 'VALID' or 2 (low, high) pairs; got 'FULL'"),
        Case("pad-empty-name", X, W, ((1, 1), ""), {}, ConvArgumentError,
             "padding must be one of 'SAME', 'SAME_LOWER', 'VALID' or 2 (low, high) pairs; got ''"),
        Case("pad-same-lhs-dil", X, W, ((1, 1), "SAME"), dict(lhs_dilation=(2, 1)), ConvArgumentError,
             "padding must be explicit (low, high) pairs when lhs_dilation is not 1 (lhs_dilation=(2, 1)); "
             "use conv_transpose for string padding; got 'SAME'"),
        Case("pad-valid-lhs-dil", X, W, ((1, 1), "VALID"), dict(lhs_dilation=[1, 3]), ConvArgumentError,
             "padding must be explicit (low, high) pairs when lhs_dilation is not 1 (lhs_dilation=(1, 3)); "
             "use conv_transpose for string padding; got 'VALID'"),
        Case("pad-crop", X, W, ((1, 1), [(-3, -3), (0, 0)]), {}, ConvShapeError,
             "padding crops more than spatial axis 0 holds (size 5 after lhs dilation); got ((-3, -3), (0, 0))"),
        Case("pad-crop-axis-1", X, W, ((1, 1), [(0, 0), (-6, 0)]), {}, ConvShapeError,
             "padding crops more than spatial axis 1 holds (size 5 after lhs dilation); got ((0, 0), (-6, 0))"),
        Case("pad-crop-lhs-dil", X, W, ((1, 1), [(-5, -5), (0, 0)]), dict(lhs_dilation=(2, 1)), ConvShapeError,
             "padding crops more than spatial axis 0 holds (size 9 after lhs dilation); got ((-5, -5), (0, 0))"),
        # precision
        Case("prec-name", X, W, V, dict(precision="ultra"), ConvArgumentError, prec_msg + "'ultra'"),
        Case("prec-int", X, W, V, dict(precision=3), ConvTypeError, prec_msg + "3"),
        Case("prec-single", X, W, V, dict(precision=["high"]), ConvArgumentError, prec_msg + "['high']"),
        Case("prec-triple", X, W, V, dict(precision=("high", "high", "high")), ConvArgumentError,
             prec_msg + "('high', 'high', 'high')"),
        Case("prec-pair-name", X, W, V, dict(precision=("high", "ultra")), ConvArgumentError,
             prec_msg + "('high', 'ultra')"),
        Case("prec-pair-type", X, W, V, dict(precision=("high", 2)), ConvTypeError, prec_msg + "('high', 2)"),
        # dtypes
        Case("dtype-mismatch", X, W, V, {}, DtypeMismatchError,
             "rhs must have the same dtype as lhs (float32); got float64" + cast("float32", "float64"),
             lhs_dtype="float32", rhs_dtype="float64"),
        Case("dtype-mismatch-int", X, W, V, {}, DtypeMismatchError,
             "rhs must have the same dtype as lhs (float64); got int64" + cast("float64", "int64"), rhs_dtype="int64"),
        Case("pref-int-for-float", X, W, V, dict(preferred_element_type=np.int32), ConvTypeError,
             "preferred_element_type is incompatible with operands of dtype float64: the combinations allowed are "
             "(integer, integer), (integer, floating), (floating, floating), (complex, complex), (bool, any); "
             "got int32"),
        Case("pref-complex-for-float", X, W, V, dict(preferred_element_type="complex128"), ConvTypeError,
             "preferred_element_type is incompatible with operands of dtype float64: the combinations allowed are "
             "(integer, integer), (integer, floating), (floating, floating), (complex, complex), (bool, any); "
             "got complex128"),
        Case("pref-float-for-complex", X, W, V, dict(preferred_element_type=np.float64), ConvTypeError,
             "preferred_element_type is incompatible with operands of dtype complex128: the combinations allowed "
             "are (integer, integer), (integer, floating), (floating, floating), (complex, complex), (bool, any); "
             "got float64",
             lhs_dtype="complex128"),
        Case("pref-narrower", X, W, V, dict(preferred_element_type=np.float32), ConvTypeError,
             "preferred_element_type must not be narrower than the operands' dtype float64; got float32"),
        Case("pref-narrower-str", X, W, V, dict(preferred_element_type="float16"), ConvTypeError,
             "preferred_element_type must not be narrower than the operands' dtype float32; got float16",
             lhs_dtype="float32"),
        Case("pref-narrower-int", X, W, V, dict(preferred_element_type=np.int16), ConvTypeError,
             "preferred_element_type must not be narrower than the operands' dtype int32; got int16",
             lhs_dtype="int32"),
        # JAX: "`preferred_element_type` must not be narrower than the original type." for int -> float too
        Case("pref-narrower-int-to-float", X, W, V, dict(preferred_element_type=np.float16), ConvTypeError,
             "preferred_element_type must not be narrower than the operands' dtype int32; got float16",
             lhs_dtype="int32"),
        Case("pref-signedness", X, W, V, dict(preferred_element_type=np.uint16), ConvTypeError,
             "preferred_element_type must not be unsigned for signed operands of dtype int8; got uint16",
             lhs_dtype="int8"),
        Case("pref-not-a-dtype", X, W, V, dict(preferred_element_type="nope"), ConvTypeError,
             "preferred_element_type must be None or a dtype; got 'nope'"),
    ]
    return c


CASES = _cases()
SHAPE_CASES = [c for c in CASES if c.shape_only]


def _operand(shape, dtype):
    return np.zeros(shape, dtype=dtype)


def _call(case: Case, lhs, rhs, **extra):
    return polyconv.conv_general_dilated(lhs, rhs, *case.args, **case.kwargs, **extra)


def _check(info, case: Case, op: str = OP):
    exc = info.value
    assert type(exc) is case.cls, f"{type(exc).__name__}: {exc}"
    assert isinstance(exc, PolyconvError)
    for base in HIERARCHY[case.cls]:
        assert isinstance(exc, base)
    assert str(exc) == f"{op}: {case.message}"
    assert exc.op == op
    assert exc.param == case.message.split(" ", 1)[0]


@pytest.fixture
def backend_must_not_run(monkeypatch):
    """The numpy backend's primitive raises: an error must come before it."""

    def boom(*args, **kwargs):
        raise AssertionError("the backend ran on invalid input")

    be = polyconv.backends.numpy.backend
    monkeypatch.setattr(be, "conv_general_dilated", boom)
    monkeypatch.setattr(be, "runner", lambda op, spec: boom)  # the per-spec fast path too
    polyconv.ops.calls.clear()  # no runner cached by an earlier valid call
    yield
    polyconv.ops.calls.clear()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_call_numpy(case, backend_must_not_run):
    lhs = _operand(case.lhs, case.lhs_dtype)
    rhs = _operand(case.rhs, case.rhs_dtype or case.lhs_dtype)
    with pytest.raises(case.cls, match=re.escape(f"{OP}: {case.message}")) as info:
        _call(case, lhs, rhs)
    _check(info, case)


@pytest.mark.parametrize("case", [c for c in CASES if c.lhs_dtype == "float64" and c.rhs_dtype is None],
                         ids=lambda c: c.id)
def test_bad_call_lists_same_as_numpy(case, backend_must_not_run):
    """Python lists become float64 NumPy arrays: same class, same message."""
    lhs = np.zeros(case.lhs).tolist()
    rhs = np.zeros(case.rhs).tolist()
    with pytest.raises(case.cls) as info:
        _call(case, lhs, rhs)
    _check(info, case)
    # one list, one array
    with pytest.raises(case.cls) as info:
        _call(case, lhs, _operand(case.rhs, "float64"))
    _check(info, case)


@pytest.mark.parametrize("case", SHAPE_CASES, ids=lambda c: c.id)
def test_bad_call_conv_general_shape(case):
    with pytest.raises(case.cls) as info:
        polyconv.conv_general_shape(case.lhs, case.rhs, *case.args, **case.kwargs)
    _check(info, case, op="conv_general_shape")


def test_backend_patch_is_effective(backend_must_not_run):
    """The fixture does intercept the backend: a valid call reaches it."""
    with pytest.raises(AssertionError, match="the backend ran"):
        polyconv.conv_general_dilated(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (1,), "VALID")


def test_all_arguments_checked_before_the_backend(backend_must_not_run):
    # every argument wrong: the first checked one is reported, the backend never runs
    with pytest.raises(PolyconvError):
        polyconv.conv_general_dilated(
            np.ones((2, 4, 5, 5)), np.ones((6, 4, 3, 3)), (0, 0), "FULL", (0, 0), (0, 0), ("A", "B", "C"), 0, 0,
            "ultra", "nope",
        )


# ---------------------------------------------------------------------------
# dtypes the backend does not take, backends, frameworks
# ---------------------------------------------------------------------------


def _unsupported_dtypes():
    # bool is supported (XLA's AND-OR convolution); these are not, on any backend
    params = [
        pytest.param(np.dtype(object), "object", id="object"),
        pytest.param(np.dtype("M8[s]"), "datetime64[s]", id="datetime64"),
        pytest.param(np.dtype("U1"), "str32", id="str"),
    ]
    return params


@pytest.mark.parametrize("dtype, name", _unsupported_dtypes())
def test_unsupported_dtype_on_numpy(dtype, name, backend_must_not_run):
    supported = ", ".join(sorted(polyconv.backends.numpy.backend.manifest.dtypes))
    lhs, rhs = np.zeros((1, 2, 4), dtype), np.zeros((3, 2, 2), dtype)
    expected = (
        f"{OP}: lhs has a dtype the 'numpy' backend does not support (supported: {supported}); got {name}"
    )
    with pytest.raises(UnsupportedDtypeError, match=re.escape(expected)) as info:
        polyconv.conv_general_dilated(lhs, rhs, (1,), "VALID")
    assert str(info.value) == expected
    assert isinstance(info.value, TypeError)
    assert (info.value.op, info.value.param) == (OP, "lhs")
    with pytest.raises(UnsupportedDtypeError, match=re.escape(expected)):
        polyconv.conv_general_dilated(lhs, rhs, (1,), "VALID", backend="numpy")


@pytest.mark.parametrize("how", ["keyword", "use_backend"])
def test_unknown_backend(how, monkeypatch):
    monkeypatch.delenv("POLYCONV_BLOCK", raising=False)
    known = ", ".join(polyconv.list_backends())
    expected = f"backend: no backend named 'no-such-backend' is registered (registered: {known})"
    x, w = np.ones((1, 1, 3)), np.ones((1, 1, 2))
    with pytest.raises(BackendNotFoundError) as info:
        if how == "keyword":
            polyconv.conv_general_dilated(x, w, (1,), "VALID", backend="no-such-backend")
        else:
            with polyconv.use_backend("no-such-backend"):
                pytest.fail("use_backend accepted an unknown name")
    assert str(info.value) == expected
    assert isinstance(info.value, LookupError) and isinstance(info.value, PolyconvError)


def test_unknown_backend_checked_before_arguments(monkeypatch):
    monkeypatch.delenv("POLYCONV_BLOCK", raising=False)
    with pytest.raises(BackendNotFoundError):
        polyconv.conv_general_dilated(np.ones((1, 1, 3)), np.ones((1, 1, 2)), (0,), "FULL", backend="nope")


@pytest.mark.parametrize("torch_first", [True, False], ids=["torch-lhs", "torch-rhs"])
def test_mixed_frameworks(torch_first, backend_must_not_run):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    t, a = torch.zeros(1, 1, 4), np.zeros((1, 1, 4))
    lhs, rhs = (t, a) if torch_first else (a, t)
    if "torch" not in polyconv.list_backends():
        # no backend owns torch tensors yet: the tensor is refused by name
        param = "lhs" if torch_first else "rhs"
        with pytest.raises(ConvTypeError) as info:
            polyconv.conv_general_dilated(lhs, rhs, (1,), "VALID")
        assert str(info.value) == (
            f"{OP}: {param} must be an array of a framework with a polyconv backend, an array-API array, "
            "or a Python scalar or list; got a torch.Tensor"
        )
        return
    with pytest.raises(MixedArraysError) as info:
        polyconv.conv_general_dilated(lhs, rhs, (1,), "VALID")
    assert isinstance(info.value, TypeError)
    msg = str(info.value)
    first, second = ("torch.Tensor", "torch"), ("numpy.ndarray", "numpy")
    if not torch_first:
        first, second = second, first
    assert msg == (
        f"{OP}: lhs is a {first[0]} (backend {first[1]!r}) but rhs is a {second[0]} "
        f"(backend {second[1]!r}); polyconv never converts between frameworks: convert one of them explicitly"
    )


def test_named_backend_refuses_foreign_arrays(backend_must_not_run):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    with pytest.raises(MixedArraysError) as info:
        polyconv.conv_general_dilated(torch.zeros(1, 1, 4), np.zeros((1, 1, 2)), (1,), "VALID", backend="numpy")
    assert str(info.value) == (
        f"{OP}: the 'numpy' backend (chosen by backend= keyword) cannot take lhs, a torch.Tensor; "
        "polyconv never converts between frameworks: convert it explicitly"
    )
    with pytest.raises(MixedArraysError) as info:
        with polyconv.use_backend("numpy"):
            polyconv.conv_general_dilated(np.zeros((1, 1, 4)), torch.zeros(1, 1, 2), (1,), "VALID")
    assert str(info.value) == (
        f"{OP}: the 'numpy' backend (chosen by use_backend()) cannot take rhs, a torch.Tensor; "
        "polyconv never converts between frameworks: convert it explicitly"
    )


@pytest.mark.parametrize("value, type_name", [("abc", "builtins.str"), (object(), "builtins.object"),
                                               (None, "builtins.NoneType")])
def test_not_an_array(value, type_name, backend_must_not_run):
    with pytest.raises(ConvTypeError) as info:
        polyconv.conv_general_dilated(value, np.zeros((1, 1, 2)), (1,), "VALID")
    assert str(info.value) == (
        f"{OP}: lhs must be an array of a framework with a polyconv backend, an array-API array, "
        f"or a Python scalar or list; got a {type_name}"
    )


def test_ragged_list_is_a_polyconv_error(backend_must_not_run):
    """A nested list that is not an array must not surface NumPy's own ValueError."""
    with pytest.raises(PolyconvError) as info:
        polyconv.conv_general_dilated([[[1.0, 2.0], [3.0]]], np.zeros((1, 2, 1)), (1,), "VALID")
    assert isinstance(info.value, (ValueError, TypeError))
    assert str(info.value).startswith(f"{OP}: lhs ")


# ---------------------------------------------------------------------------
# conv_general_shape's own arguments
# ---------------------------------------------------------------------------


def test_conv_general_shape_rejects_non_integer_shapes():
    with pytest.raises(ConvTypeError) as info:
        polyconv.conv_general_shape((2.0, 4, 5, 5), W, (1, 1), "VALID")
    assert str(info.value) == "conv_general_shape: lhs must have a shape of integers; got (2.0, 4, 5, 5)"
    with pytest.raises(ConvTypeError) as info:
        polyconv.conv_general_shape(X, (6, 4, "3", 3), (1, 1), "VALID")
    assert str(info.value) == "conv_general_shape: rhs must have a shape of integers; got (6, 4, '3', 3)"


def test_conv_general_shape_rejects_a_scalar_shape():
    with pytest.raises(ConvTypeError) as info:
        polyconv.conv_general_shape(5, W, (1, 1), "VALID")
    assert str(info.value) == "conv_general_shape: lhs must have a shape of integers; got 5"


@pytest.mark.parametrize(
    "lhs, rhs, param",
    [((-1, 4, 5, 5), W, "lhs"), ((2, 4, -5, 5), W, "lhs"), (X, (6, 4, -3, 3), "rhs"), (X, (-6, 4, 3, 3), "rhs")],
)
def test_conv_general_shape_rejects_negative_sizes(lhs, rhs, param):
    with pytest.raises(PolyconvError) as info:
        polyconv.conv_general_shape(lhs, rhs, (1, 1), "VALID")
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert msg.startswith(f"conv_general_shape: {param} ")
    assert repr(lhs if param == "lhs" else rhs) in msg
    assert "padding" not in msg


# ---------------------------------------------------------------------------
# messages and the parse cache
# ---------------------------------------------------------------------------


def test_one_spatial_dim_messages_read_as_singular(backend_must_not_run):
    x, w = np.zeros((1, 1, 5)), np.zeros((1, 1, 2))
    with pytest.raises(ConvArgumentError) as info:
        polyconv.conv_general_dilated(x, w, (1, 1), "VALID")
    assert str(info.value) == f"{OP}: window_strides must be a sequence of 1 positive integer; got (1, 1)"
    with pytest.raises(ConvArgumentError) as info:
        polyconv.conv_general_dilated(x, w, (1,), [(1, 2, 3)])
    assert str(info.value) == (
        f"{OP}: padding must be a padding name or a sequence of 1 (low, high) integer pair; got [(1, 2, 3)]"
    )


@pytest.mark.parametrize(
    "kwargs, cls",
    [
        (dict(window_strides=(1.0, 1)), ConvTypeError),
        (dict(window_strides=(True, 1)), ConvTypeError),
        (dict(padding=[(0.0, 0), (0, 0)]), ConvTypeError),
        (dict(padding=[(False, 0), (0, 0)]), ConvTypeError),
        (dict(lhs_dilation=(1.0, 1)), ConvTypeError),
        (dict(rhs_dilation=(True, 1)), ConvTypeError),
        (dict(feature_group_count=1.0), ConvTypeError),
        (dict(feature_group_count=True), ConvTypeError),
        (dict(batch_group_count=True), ConvTypeError),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "",
)
def test_bad_call_rejected_after_the_equal_valid_call(kwargs, cls):
    """1 == 1.0 == True: a valid call must not make an equal-valued float or bool
    argument acceptable through the parse cache."""
    x, w = np.zeros((1, 2, 6, 6)), np.zeros((2, 2, 3, 3))
    good = dict(window_strides=(1, 1), padding=[(0, 0), (0, 0)], lhs_dilation=(1, 1), rhs_dilation=(1, 1),
                feature_group_count=1, batch_group_count=1)
    polyconv.conv_general_dilated(x, w, **good)
    with pytest.raises(cls):
        polyconv.conv_general_dilated(x, w, **{**good, **kwargs})
    with pytest.raises(cls):
        polyconv.conv_general_shape(x.shape, w.shape, **{**good, **kwargs})


# ---------------------------------------------------------------------------
# valid edge cases are accepted (JAX accepts them)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, preferred",
    [("uint8", "int16"), ("int8", "int16"), ("int8", "float16"), ("int32", "float32"), ("int16", "float64"),
     ("float16", "float32"), ("float32", "float64"), ("complex64", "complex128"), ("float32", None)],
)
def test_preferred_element_type_accepted(dtype, preferred):
    spec = polyconv.spec.conv_spec((1, 2, 5), (3, 2, 2), dtype, dtype, (1,), "VALID", preferred_element_type=preferred)
    assert spec.out_dtype == (preferred or dtype)


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (((1,), "same"), {}),
        (((1,), "Same_Lower"), {}),
        (((1,), [(-2, -3)]), {}),  # crops the axis to nothing: an empty output
        (((1,), [(-4, -3)]), dict(lhs_dilation=(2,))),
        (((3,), [(5, 5)]), {}),
        (((1,), np.array([[1, 1]])), {}),
        ((np.array([2]), "VALID"), dict(rhs_dilation=np.array([2]))),
        (((np.int64(1),), "VALID"), dict(feature_group_count=np.int64(1))),
        (((1,), "VALID"), dict(precision=("high", None))),
    ],
)
def test_valid_edge_cases_accepted(args, kwargs):
    y = polyconv.conv_general_dilated(np.ones((1, 2, 5)), np.ones((3, 2, 2)), *args, **kwargs)
    assert isinstance(y, np.ndarray)


# ---------------------------------------------------------------------------
# inputs are left alone
# ---------------------------------------------------------------------------

VALID_CALLS = [
    pytest.param((2, 3, 6, 5), (4, 3, 3, 2), ((1, 2), "SAME"), {}, id="same"),
    pytest.param((2, 3, 6, 5), (4, 3, 3, 2), ((2, 1), [(-1, 2), (3, -2)]),
                 dict(lhs_dilation=(2, 1), rhs_dilation=(1, 2)), id="dilations-negative-pad"),
    pytest.param((2, 6, 5, 5), (9, 2, 2, 2), ((1, 1), "VALID"), dict(feature_group_count=3), id="fgc"),
    pytest.param((4, 3, 5, 5), (6, 3, 2, 2), ((1, 1), "VALID"), dict(batch_group_count=2), id="bgc"),
    pytest.param((2, 5, 6, 3), (2, 3, 3, 4), ((1, 1), "SAME_LOWER"),
                 dict(dimension_numbers=("NHWC", "HWIO", "NHWC")), id="nhwc"),
    pytest.param((2, 3, 4, 4), (3, 3, 1, 1), ((1, 1), "VALID"), {}, id="1x1"),
    pytest.param((3, 4), (5, 4), ((), "VALID"), {}, id="0d"),
    pytest.param((2, 3, 6), (4, 3, 2), ((1,), "VALID"), dict(preferred_element_type=np.float64), id="preferred"),
]


@pytest.mark.parametrize("dtype", ["float32", "int32"])
@pytest.mark.parametrize("lhs_shape, rhs_shape, args, kwargs", VALID_CALLS)
def test_inputs_not_modified(lhs_shape, rhs_shape, args, kwargs, dtype):
    rng = np.random.default_rng(0)
    lhs = rng.integers(-5, 6, size=lhs_shape).astype(dtype)
    rhs = rng.integers(-5, 6, size=rhs_shape).astype(dtype)
    lhs_before, rhs_before = lhs.copy(), rhs.copy()
    y = polyconv.conv_general_dilated(lhs, rhs, *args, **kwargs)
    for before, after in ((lhs_before, lhs), (rhs_before, rhs)):
        assert after.dtype == before.dtype and after.shape == before.shape
        np.testing.assert_array_equal(after, before)
    assert not np.shares_memory(y, lhs) and not np.shares_memory(y, rhs)

    # read-only operands work (nothing writes into them)
    lhs.flags.writeable = False
    rhs.flags.writeable = False
    y2 = polyconv.conv_general_dilated(lhs, rhs, *args, **kwargs)
    np.testing.assert_array_equal(y2, y)


def test_list_inputs_and_arguments_not_modified():
    lhs = np.arange(30.0).reshape(1, 2, 15).tolist()
    rhs = [[[1.0, -1.0], [0.5, 2.0]]]
    strides, padding, dn = [2], [[1, -1]], ["NCW", "OIW", "NCW"]
    before = copy.deepcopy((lhs, rhs, strides, padding, dn))
    polyconv.conv_general_dilated(lhs, rhs, strides, padding, dimension_numbers=dn)
    assert (lhs, rhs, strides, padding, dn) == before

"""The NumPy backend against the reference semantics, by value."""

from __future__ import annotations

import numpy as np
import pytest
from polyconv.backends import gemm
from polyconv.conformance import cases, tolerances

import polyconv
from polyconv.spec import conv_spec


def _spec(case: cases.ConvCase, lhs: np.ndarray, rhs: np.ndarray):
    return conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **case.kwargs())


@pytest.mark.parametrize("workspace", [1, 200, 5000])
def test_chunked_rows_and_taps_match_reference(workspace: int) -> None:
    """Tiny workspaces force many row chunks and single-tap chunks."""
    rng = np.random.default_rng(7)
    for i in range(40):
        case = cases.random_case(rng, dtype="float64", index=i)
        lhs, rhs = case.operands()
        spec = _spec(case, lhs, rhs)
        out = gemm.conv_general_dilated(np, lhs, rhs, spec, workspace_bytes=workspace)
        tolerances.assert_close(out, lhs, rhs, spec)


def test_non_contiguous_and_negative_stride_inputs() -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((3, 9, 8, 5))
    lhs = base[:, ::-2, 1:, :].transpose(0, 3, 1, 2)  # NCHW view of a flipped, strided array
    rhs = rng.standard_normal((6, 4, 3, 5))[:, :, ::-1, ::-1].transpose(0, 3, 2, 1)[:, :5]
    rhs = rhs[:, :, :, :]
    out = polyconv.conv_general_dilated(lhs, rhs.copy(), (1, 2), "SAME")
    expected = polyconv.conv_general_dilated(np.ascontiguousarray(lhs), np.ascontiguousarray(rhs), (1, 2), "SAME")
    np.testing.assert_array_equal(out, expected)
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, (1, 2), "SAME")
    tolerances.assert_close(out, lhs, rhs, spec)


def test_result_is_a_fresh_contiguous_array() -> None:
    lhs = np.ones((1, 1, 4, 4), np.float32)
    rhs = np.ones((1, 1, 1, 1), np.float32)
    out = polyconv.conv_general_dilated(lhs, rhs, (1, 1), "VALID")
    assert not np.shares_memory(out, lhs)
    assert out.flags.c_contiguous
    out[...] = 5
    assert (lhs == 1).all()


def test_python_lists_and_scalars_run_on_numpy() -> None:
    out = polyconv.conv_general_dilated([[[1.0, 2.0, 3.0]]], [[[1.0, -1.0]]], (1,), "VALID")
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, [[[-1.0, -1.0]]])


@pytest.mark.parametrize("precision", [None, "default", "high", "highest", ("default", "highest")])
def test_precision_is_accepted_and_results_are_full_precision(precision) -> None:
    rng = np.random.default_rng(5)
    lhs = rng.standard_normal((2, 3, 10)).astype(np.float32)
    rhs = rng.standard_normal((4, 3, 3)).astype(np.float32)
    out = polyconv.conv_general_dilated(lhs, rhs, (1,), "SAME", precision=precision)
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, (1,), "SAME", precision=precision)
    tolerances.assert_close(out, lhs, rhs, spec, reduced_precision=False)


def test_float16_accumulates_in_float32() -> None:
    # 4096 products of 1 * 1 plus one large value: float16 accumulation would stall at 2048.
    lhs = np.ones((1, 1, 4096), np.float16)
    rhs = np.ones((1, 1, 4096), np.float16)
    out = polyconv.conv_general_dilated(lhs, rhs, (1,), "VALID")
    assert out.dtype == np.float16
    assert float(out[0, 0, 0]) == 4096.0


def test_integer_results_are_exact_and_wrap() -> None:
    lhs = np.full((1, 1, 3), 100, np.int8)
    rhs = np.full((1, 1, 3), 100, np.int8)
    out = polyconv.conv_general_dilated(lhs, rhs, (1,), "VALID")
    assert out.dtype == np.int8 and int(out[0, 0, 0]) == np.int64(30000).astype(np.int8)
    wide = polyconv.conv_general_dilated(lhs, rhs, (1,), "VALID", preferred_element_type=np.int32)
    assert wide.dtype == np.int32 and int(wide[0, 0, 0]) == 30000
    big = np.full((1, 1, 2), 2**62, np.int64)
    one = np.full((1, 1, 2), 3, np.int64)
    out = polyconv.conv_general_dilated(big, one, (1,), "VALID")  # 6 * 2**62 wraps modulo 2**64
    assert int(out[0, 0, 0]) == int(np.int64(-(2**63)))


def test_bool_is_any_of_and() -> None:
    lhs = np.array([[[True, False, False, True]]])
    rhs = np.array([[[True, True]]])
    out = polyconv.conv_general_dilated(lhs, rhs, (1,), "VALID")
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, [[[True, False, True]]])


@pytest.mark.slow
def test_memory_stays_bounded_when_im2col_would_need_8gb() -> None:
    """The full windows matrix here is 8.1 GB; the extra memory stays far below 1 GB."""
    import tracemalloc

    rng = np.random.default_rng(0)
    lhs = rng.standard_normal((1, 16, 1024, 1024), dtype=np.float32)  # 64 MiB input
    rhs = rng.standard_normal((2, 16, 11, 11), dtype=np.float32)
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, (1, 1), "SAME")
    rows = 1024 * 1024
    im2col_bytes = rows * 16 * 11 * 11 * 4
    assert im2col_bytes > 8e9
    tracemalloc.start()
    try:
        out = polyconv.conv_general_dilated(lhs, rhs, (1, 1), "SAME")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    extra = peak - out.nbytes
    assert extra < 1 << 30, f"peak extra memory {extra / 2**20:.0f} MiB"
    # spot-check values against the reference on a window of the output
    sub = (slice(None), slice(None), slice(500, 520), slice(0, 20))
    ref_lhs = lhs[:, :, 495:525, 0:25]
    ref_spec = conv_spec(ref_lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, (1, 1), [(0, 0), (5, 0)])
    tolerances.assert_close(out[sub], ref_lhs, rhs, ref_spec)
    assert spec.out_shape == out.shape

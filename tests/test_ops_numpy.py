"""conv_transpose, patches, local and the VJPs on the NumPy backend against the reference.

The NumPy backend derives all four from its primitive (``polyconv.derive``);
the reference computes each from its own definition (a scatter for the
transposed convolution and the lhs cotangent, gathers for the rest).
Grids: the transposed-convolution grid (both padding conventions,
``transpose_kernel``, strides 1-3, odd and even kernels, kernel dilation),
and, for patches, local and the VJPs, every case of the forward grid (every
layout family, 0-3 spatial dims, every padding kind, dilations, zero sizes),
plus the dtype grid and seeded random cases.
"""

from __future__ import annotations

import numpy as np
import pytest
from polyconv.conformance import cases, tolerances

import polyconv
from polyconv.spec import conv_spec, conv_transpose_spec, dtype_kind, local_spec, patches_spec


def _patches_case(case: cases.ConvCase) -> cases.PatchesCase:
    lhs, rhs = case.lhs_shape, case.rhs_shape
    window = conv_spec(lhs, rhs, "float64", "float64", **{**case.kwargs(), "precision": None}).window
    return cases.PatchesCase(
        name=f"patches-{case.name}", lhs_shape=lhs, filter_shape=window, window_strides=case.window_strides,
        padding=case.padding, lhs_dilation=case.lhs_dilation, rhs_dilation=case.rhs_dilation,
        dimension_numbers=case.dimension_numbers, dtype=case.dtype, seed=case.seed,
    )


def _local_case(case: cases.ConvCase) -> cases.LocalCase:
    p = _patches_case(case)
    conv = patches_spec(p.lhs_shape, "float64", **{k: v for k, v in p.kwargs().items() if k != "precision"}).conv
    dn = conv.dimension_numbers
    rhs = [0] * len(case.rhs_shape)
    for axis, size in zip(dn.rhs_spec, (case.rhs_shape[dn.rhs_spec[0]], conv.out_features, *conv.out_spatial)):
        rhs[axis] = size
    return cases.LocalCase(
        name=f"local-{case.name}", lhs_shape=p.lhs_shape, rhs_shape=tuple(rhs), window_strides=p.window_strides,
        padding=p.padding, filter_shape=p.filter_shape, lhs_dilation=p.lhs_dilation, rhs_dilation=p.rhs_dilation,
        dimension_numbers=p.dimension_numbers, dtype=case.dtype, seed=case.seed,
    )


def _unchanged(before: tuple[np.ndarray, ...], after: tuple[np.ndarray, ...]) -> None:
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)


# -- conv_transpose ------------------------------------------------------------------

def _check_transpose(case: cases.TransposeCase) -> None:
    lhs, rhs = case.operands()
    copies = (lhs.copy(), rhs.copy())
    out = polyconv.conv_transpose(lhs, rhs, **case.kwargs())
    spec = conv_transpose_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **case.kwargs())
    assert type(out) is np.ndarray and out.dtype.name == spec.conv.out_dtype
    problem = tolerances.check_transpose_close(out, lhs, rhs, spec)
    assert problem is None, f"{case!r}: {problem}"
    _unchanged(copies, (lhs, rhs))


@pytest.mark.parametrize("case", cases.transpose_grid(), ids=str)
def test_transpose_grid(case: cases.TransposeCase) -> None:
    _check_transpose(case)


def test_transpose_random_in_every_dtype(random_case_count: int) -> None:
    rng = np.random.default_rng(31)
    dtypes = [d for d in cases.DTYPES if d != "bfloat16"]
    for i in range(random_case_count):
        _check_transpose(cases.random_transpose_case(rng, str(rng.choice(dtypes)), i))


@pytest.mark.parametrize("nd", [4, 5])
def test_transpose_beyond_three_spatial_dims(nd: int) -> None:
    """JAX has no default layout here; polyconv's is channels-last, checked by the reference."""
    rng = np.random.default_rng(nd)
    lhs = rng.standard_normal((1, *([3] * nd), 2))
    rhs = rng.standard_normal((*([2] * nd), 3, 2))  # I=3 outputs, O=2 lhs features (transposed)
    out = polyconv.conv_transpose(lhs, rhs, (2,) * nd, "SAME", transpose_kernel=True)
    assert out.shape == (1, *([6] * nd), 3)
    spec = conv_transpose_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, (2,) * nd, "SAME", transpose_kernel=True)
    assert tolerances.check_transpose_close(out, lhs, rhs, spec) is None


# -- patches and local -----------------------------------------------------------------

def _check_patches(case: cases.PatchesCase) -> None:
    (lhs,) = case.operands()
    copy = lhs.copy()
    out = polyconv.conv_general_dilated_patches(lhs, **case.kwargs())
    spec = patches_spec(lhs.shape, lhs.dtype, **case.kwargs())
    assert type(out) is np.ndarray and out.dtype.name == spec.conv.out_dtype
    problem = tolerances.check_patches_close(out, lhs, spec)
    assert problem is None, f"{case!r}: {problem}"
    _unchanged((copy,), (lhs,))


def _check_local(case: cases.LocalCase) -> None:
    lhs, rhs = case.operands()
    copies = (lhs.copy(), rhs.copy())
    out = polyconv.conv_general_dilated_local(lhs, rhs, **case.kwargs())
    spec = local_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **case.kwargs())
    assert type(out) is np.ndarray and out.dtype == lhs.dtype and out.shape == spec.out_shape
    problem = tolerances.check_local_close(out, lhs, rhs, spec)
    assert problem is None, f"{case!r}: {problem}"
    _unchanged(copies, (lhs, rhs))


@pytest.mark.parametrize("case", cases.grid(), ids=str)
def test_patches_grid(case: cases.ConvCase) -> None:
    _check_patches(_patches_case(case))


@pytest.mark.parametrize("case", cases.grid(), ids=str)
def test_local_grid(case: cases.ConvCase) -> None:
    _check_local(_local_case(case))


@pytest.mark.parametrize("case", [c for c in cases.dtype_grid() if c.preferred_element_type is None], ids=str)
def test_patches_and_local_every_dtype(case: cases.ConvCase) -> None:
    if case.dtype == "bfloat16":
        pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes")
    _check_patches(_patches_case(case))
    _check_local(_local_case(case))


def test_patches_and_local_random(random_case_count: int) -> None:
    count = max(300, random_case_count // 2)
    for case in cases.random_patches_cases(count, seed=41):
        _check_patches(case)
    for case in cases.random_local_cases(count, seed=43):
        _check_local(case)


# -- VJPs ------------------------------------------------------------------------------

def _check_vjp(case: cases.ConvCase) -> None:
    lhs, rhs = case.operands()
    kw = case.kwargs()
    spec = conv_spec(lhs.shape, rhs.shape, lhs.dtype, rhs.dtype, **kw)
    g = cases.make_operand(np.random.default_rng(case.seed + 5), spec.out_shape, spec.out_dtype)
    copies = (lhs.copy(), rhs.copy(), g.copy())
    dx, dw = polyconv.conv_general_dilated_vjp(lhs, rhs, g, **kw)
    # the operands' dtype, but real-valued cotangents of integer operands stay real
    integer_operands = dtype_kind(spec.dtype) in "biu" and dtype_kind(spec.out_dtype) in "fc"
    expected = spec.out_dtype if integer_operands else spec.dtype
    assert dx.dtype.name == expected and dw.dtype.name == expected
    problem = tolerances.check_vjp_close(dx, dw, lhs, rhs, g, spec, out_dtype=expected)
    assert problem is None, f"{case!r}: {problem}"
    _unchanged(copies, (lhs, rhs, g))


@pytest.mark.parametrize("case", cases.grid(), ids=str)
def test_vjp_grid(case: cases.ConvCase) -> None:
    _check_vjp(case)


@pytest.mark.parametrize("case", cases.dtype_grid(), ids=str)
def test_vjp_every_dtype(case: cases.ConvCase) -> None:
    if "bfloat16" in (case.dtype, case.preferred_element_type):
        pytest.importorskip("ml_dtypes", reason="bfloat16 needs ml_dtypes")
    _check_vjp(case)


def test_vjp_random(random_case_count: int) -> None:
    rng = np.random.default_rng(47)
    dtypes = [d for d in cases.DTYPES if d not in ("bfloat16", "bool")]
    for i in range(random_case_count):
        _check_vjp(cases.random_case(rng, dtype=str(rng.choice(dtypes)), index=i))

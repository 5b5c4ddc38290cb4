"""Non-finite operands raise no NumPy RuntimeWarning to the user (as from torch
and jax.lax), on every strategy of the NumPy backend, on the dask backend and
on the array-API backend; the values stay those of the reference."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from polyconv.backends.numpy import strategy
from polyconv.conformance import reference

import polyconv
from polyconv.spec import conv_spec

pytestmark = pytest.mark.usefixtures("clean_polyconv_env")

# (name, lhs shape, rhs shape, call arguments): one call per NumPy strategy
CALLS = [
    ("small", (1, 2, 6), (3, 2, 3), dict(window_strides=(1,), padding="SAME")),
    ("offsets", (2, 16, 40, 40), (16, 16, 3, 3), dict(window_strides=(1, 1), padding="SAME")),
    ("depthwise", (2, 16, 40, 40), (16, 1, 3, 3), dict(window_strides=(1, 1), padding="SAME",
                                                      feature_group_count=16)),
    ("pointwise", (2, 64, 40, 40), (64, 64, 1, 1), dict(window_strides=(1, 1), padding="VALID")),
    ("polyphase", (2, 16, 40, 40), (16, 16, 3, 3), dict(window_strides=(1, 1), padding=((2, 2), (2, 2)),
                                                      lhs_dilation=(2, 2))),
    ("fft", (1, 1, 4096), (1, 1, 511), dict(window_strides=(1,), padding="SAME")),
]


def _operands(lhs: tuple[int, ...], rhs: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(lhs).astype(np.float32)
    w = rng.standard_normal(rhs).astype(np.float32)
    x.flat[:: max(1, x.size // 7)] = np.inf
    x.flat[3] = -np.inf
    x.flat[5] = np.nan
    w.flat[0] = 0.0
    return x, w


@pytest.mark.parametrize("name, lhs, rhs, kwargs", CALLS, ids=[c[0] for c in CALLS])
def test_numpy_strategies_are_silent_on_non_finite_operands(name: str, lhs: Any, rhs: Any, kwargs: Any) -> None:
    x, w = _operands(lhs, rhs)
    mode = "always" if name == "fft" else "auto"
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kwargs)
    assert name in strategy.choose(spec, mode).parts or strategy.choose(spec, mode).name == name
    with warnings.catch_warnings(), polyconv.use_fft(mode):
        warnings.simplefilter("error")
        y = polyconv.conv_general_dilated(x, w, **kwargs)
    expected = reference.conv_general_dilated(x.astype(np.float64), w.astype(np.float64), **kwargs)
    assert np.isnan(y).any() and np.isinf(y).any()  # the non-finite values did meet zeros and each other
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_array_equal(y[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])
    np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-4, atol=1e-3)


def test_the_users_own_error_state_is_left_as_it_was() -> None:
    x, w = _operands((1, 2, 6), (3, 2, 3))
    with np.errstate(invalid="raise"):
        polyconv.conv_general_dilated(x, w, (1,), "SAME")
        with pytest.raises(FloatingPointError):
            np.float64("inf") * np.float64(0.0)
    assert np.geterr()["invalid"] == "warn"


@pytest.mark.parametrize("backend", ["dask", "array_api"])
def test_other_numpy_based_backends_are_silent(backend: str) -> None:
    x, w = _operands((1, 2, 12), (3, 2, 3))
    if backend == "dask":
        da = pytest.importorskip("dask.array", reason="dask is not installed")
        lhs, rhs = da.from_array(x, chunks=(1, 1, 4)), w
    else:
        xp = pytest.importorskip("array_api_strict", reason="array-api-strict is not installed")
        lhs, rhs = xp.asarray(x), xp.asarray(w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = polyconv.conv_general_dilated(lhs, rhs, (1,), "SAME")
        y = np.asarray(y.compute() if backend == "dask" else y)
    expected = reference.conv_general_dilated(x.astype(np.float64), w.astype(np.float64), (1,), "SAME")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))


@pytest.mark.parametrize("op", ["conv_transpose", "conv_general_dilated_patches", "conv_general_dilated_local",
                                "conv_general_dilated_vjp"])
def test_the_derived_ops_are_silent_too(op: str) -> None:
    x, w = _operands((1, 2, 6), (3, 2, 3))
    one_inf = np.ones((1, 2, 6), np.float32)
    one_inf[0, 0, 2] = np.inf
    call = {
        "conv_transpose": lambda: polyconv.conv_transpose(x, w, (2,), "SAME", dimension_numbers=("NCH", "OIH", "NCH")),
        "conv_general_dilated_patches": lambda: polyconv.conv_general_dilated_patches(x, (3,), (1,), "SAME"),
        "conv_general_dilated_local": lambda: polyconv.conv_general_dilated_local(
            one_inf, np.zeros((3, 6, 6), np.float32), (1,), "SAME", (3,)),  # inf * 0 in one product
        "conv_general_dilated_vjp": lambda: polyconv.conv_general_dilated_vjp(x, w, np.ones((1, 3, 6), np.float32),
                                                                              (1,), "SAME"),
    }[op]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = call()
    assert any(np.isnan(np.asarray(r)).any() for r in (result if isinstance(result, tuple) else (result,)))


def test_a_dask_local_convolution_is_silent_at_compute() -> None:
    # its per-position products run at compute(), after the call has returned: the chunks' own task is quiet
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    x = np.random.default_rng(0).standard_normal((2, 2, 12)).astype(np.float32)
    x[:, :, ::3] = 0.0
    w = np.random.default_rng(1).standard_normal((3, 6, 10)).astype(np.float32)
    w[0, 0], w[1, 4, ::2], w[1, 5, ::4], w[2, 3, 5] = np.inf, np.inf, -np.inf, np.nan  # inf * 0, inf - inf
    args = ((1,), "VALID", (3,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lazy = polyconv.conv_general_dilated_local(da.from_array(x, chunks=(1, 1, 5)), w, *args)
        y = lazy.compute()
    expected = reference.conv_general_dilated_local(x.astype(np.float64), w.astype(np.float64), *args)
    assert np.isnan(expected).any() and np.isinf(expected).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(y[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])
    np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-5, atol=1e-5)

"""polyconv.explain: which path, strategy and FFT decision a call takes, without computing it."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest

import polyconv
from polyconv import ops
from polyconv.errors import ConvArgumentError, ConvShapeError, PolyconvError

X = np.ones((8, 32, 256, 256), np.float32)
W = np.ones((32, 1, 31, 31), np.float32)


def _no_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    from polyconv.backends.numpy import NumpyBackend

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("explain computed a convolution")

    for name in ("conv_general_dilated", "conv_transpose"):
        monkeypatch.setattr(NumpyBackend, name, refuse)


def test_a_large_depthwise_kernel_takes_fft_with_both_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_compute(monkeypatch)
    e = polyconv.explain("conv_general_dilated", X, W, (1, 1), "SAME", feature_group_count=32)
    assert (e.op, e.backend, e.path, e.strategy) == ("conv_general_dilated", "numpy", "runner", "fft")
    (d,) = e.fft
    assert d.use and d.fft_seconds < d.direct_seconds and "cost model" in d.why and e.why == d.why
    with polyconv.use_fft("never"):
        never = polyconv.explain(polyconv.conv_general_dilated, X, W, (1, 1), "SAME", feature_group_count=32)
    assert never.strategy == "depthwise" and "not FFT: FFT mode 'never'" in never.why
    with polyconv.use_fft("always"):
        small = polyconv.explain("conv_general_dilated", X[:1, :1, :8, :8], W[:1, :, :3, :3], (1, 1), "SAME")
    assert small.strategy == "fft" and small.fft[0].why == "FFT mode 'always'"
    assert "FFT: yes, FFT mode 'always'" in str(small)


@pytest.mark.parametrize(("dtype", "strategy", "why"), [
    ("float64", "offsets", "not FFT: accumulates in float64"),
    ("int8", "gemm", "exact sums of int8 operands"),
])
def test_why_not_fft(dtype: str, strategy: str, why: str) -> None:
    x, w = np.ones((4, 16, 40, 40), dtype), np.ones((16, 16, 3, 3), dtype)
    e = polyconv.explain("conv_general_dilated", x, w, (1, 1), "SAME")
    assert e.strategy == strategy and why in e.why, e


def test_derived_ops_explain_the_convolutions_they_run() -> None:
    x, w = np.ones((1, 3, 20)), np.ones((4, 3, 3))
    ct = np.ones((1, 4, 20))
    e = polyconv.explain("conv_general_dilated_vjp", x, w, ct, (1,), "SAME")
    assert e.path == "derived" and len(e.parts) == 2
    assert all(p.op == "conv_general_dilated" and p.backend == "numpy" for p in e.parts)
    patches = polyconv.explain("conv_general_dilated_patches", x, (3,), (1,), "SAME")
    assert patches.path == "derived" and patches.parts[0].strategy in ("small", "offsets", "depthwise")
    transpose = polyconv.explain("conv_transpose", x, w.transpose(2, 1, 0), (2,), "SAME",
                                 dimension_numbers=("NCH", "HIO", "NCH"))
    assert transpose.path == "runner" and transpose.strategy in ("small", "polyphase")


def test_explain_raises_what_the_call_raises() -> None:
    x, w = np.ones((1, 3, 20)), np.ones((4, 3, 3))
    for args in [((1, 1), "SAME"), ((1,), "SAME_UPPER")]:
        with pytest.raises(PolyconvError) as called:
            polyconv.conv_general_dilated(x, w, *args)
        with pytest.raises(type(called.value)) as explained:
            polyconv.explain("conv_general_dilated", x, w, *args)
        assert str(explained.value) == str(called.value)
    with pytest.raises(ConvShapeError, match="cotangent"):
        polyconv.explain("conv_general_dilated_vjp", x, w, np.ones((1, 4, 5)), (1,), "SAME")
    with pytest.raises(ConvArgumentError, match="op must be one of conv_general_dilated"):
        polyconv.explain("conv2d", x, w)


def test_the_debug_log_names_the_strategy(caplog: pytest.LogCaptureFixture) -> None:
    ops.calls.clear()
    x, w = np.ones((4, 16, 40, 40), np.float32), np.ones((16, 16, 3, 3), np.float32)
    with caplog.at_level(logging.DEBUG, logger="polyconv"):
        polyconv.conv_general_dilated(x, w, (1, 1), "SAME")
    assert any("conv_general_dilated: strategy 'offsets' on 'numpy' (runner)" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_torch_reports_its_path() -> None:
    import torch

    x, w = torch.ones(2, 3, 30), torch.ones(4, 3, 3)
    assert polyconv.explain("conv_general_dilated", x, w, (1,), "SAME").strategy == "native"
    with polyconv.use_fft("always"):
        assert polyconv.explain("conv_general_dilated", x, w, (1,), "SAME").strategy == "fft"
    xi, wi = torch.ones(2, 3, 30, dtype=torch.int32), torch.ones(4, 3, 3, dtype=torch.int32)
    assert polyconv.explain("conv_general_dilated", xi, wi, (1,), "SAME").strategy.startswith("exact-")


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_jax_reports_lax_or_taps() -> None:
    import jax
    import jax.numpy as jnp

    x, w = jnp.ones((1, 16, 8)), jnp.ones((32, 16, 3))
    assert polyconv.explain("conv_general_dilated", x, w, (1,), "SAME").strategy == "lax"
    x, w = jnp.ones((1, 1, 8)), jnp.ones((1, 1, 3))  # too small for the shifted sum to pay
    assert polyconv.explain("conv_general_dilated", x, w, (1,), "SAME").strategy == "lax"
    x = jnp.ones((1, 1, 256))
    few = polyconv.explain("conv_general_dilated", x, w, (1,), "SAME")
    if jax.default_backend() == "cpu":  # few channels: the CPU's shifted sum, XLA's own gradient
        assert few.strategy == "shifted" and "few channels" in few.why and "jax.lax.conv_general_dilated" in few.why
    else:
        assert few.strategy == "lax"
    assert polyconv.explain("conv_general_dilated", x, w, (1,), [(2**40, -(2**40))]).strategy == "taps"

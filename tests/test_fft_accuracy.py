"""No silent wrong answers from the automatic FFT path (docs/fft.md, the error rule).

Operands whose range is wide (regions of very different magnitude, kernel taps
spanning twelve decades with padding past the input, subnormal values beside
ordinary ones) used to come back from ``use_fft('auto')`` with errors far above
the conformance tolerance in their small outputs.  Each class here is run under
``auto`` on the NumPy and torch backends, through the plain convolution with
strides, dilations and groups, the transposed convolution and the VJP, and
every element is compared with float64 direct sums (the reference): the error
must stay within the tolerance the conformance suite allows the direct
computation.  Ordinary operands must still take the FFT path, and the
operands that the rule sends to the direct path are checked to be ones whose
FFT result would have broken the tolerance (so the rule is not simply off).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from polyconv.backends import fft
from polyconv.backends.fft import accuracy
from polyconv.backends.fft import whole as fft_spec
from polyconv.conformance import reference, tolerances

import polyconv
from polyconv.spec import conv_spec
from polyconv.spec.canonical import Problem

pytestmark = pytest.mark.usefixtures("clean_polyconv_env")

RNG = np.random.default_rng(20261205)


def _regions(shape: tuple[int, ...]) -> np.ndarray:
    x = RNG.standard_normal(shape)
    half = shape[-1] // 2
    x[..., :half] *= 1e8
    x[..., half:] *= 1e-3
    return x.astype(np.float32)


def _offset(shape: tuple[int, ...]) -> np.ndarray:
    return (1000.0 + RNG.standard_normal(shape)).astype(np.float32)


def _subnormal(shape: tuple[int, ...]) -> np.ndarray:
    x = RNG.standard_normal(shape)
    x[..., shape[-1] // 2:] *= 1e-40
    return x.astype(np.float32)


def _ordinary(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _kernel(shape: tuple[int, ...], kind: str) -> np.ndarray:
    w = RNG.standard_normal(shape)
    if kind == "taps":  # magnitudes from 1e-6 at one end of the window to 1e6 at the other
        w = np.sign(w) * 10.0 ** np.linspace(-6, 6, shape[-1])
    elif kind == "zero-sum":
        w -= w.mean(axis=tuple(range(2, w.ndim)), keepdims=True)
    return w.astype(np.float32)


# (id, lhs, rhs, keyword arguments of conv_general_dilated, whether the rule refuses FFT)
CONV_CASES = [
    ("regions-2d", lambda: _regions((1, 1, 256, 256)), lambda: _kernel((1, 1, 15, 15), "plain"),
     dict(window_strides=(1, 1), padding="SAME"), True),
    ("regions-strided-dilated-groups", lambda: _regions((1, 2, 2048)), lambda: _kernel((2, 1, 255), "plain"),
     dict(window_strides=(2,), padding="SAME", rhs_dilation=(2,), feature_group_count=2), True),
    ("regions-batch-groups", lambda: _regions((4, 1, 192, 192)), lambda: _kernel((2, 1, 21, 21), "plain"),
     dict(window_strides=(1, 1), padding="VALID", batch_group_count=2), True),
    ("offset-zero-sum", lambda: _offset((1, 1, 256, 256)), lambda: _kernel((1, 1, 15, 15), "zero-sum"),
     dict(window_strides=(1, 1), padding="SAME"), False),
    ("taps-255-full", lambda: _ordinary((1, 1, 4096)), lambda: _kernel((1, 1, 255), "taps"),
     dict(window_strides=(1,), padding=((254, 254),)), True),
    ("taps-1023-full", lambda: _ordinary((1, 1, 4096)), lambda: _kernel((1, 1, 1023), "taps"),
     dict(window_strides=(1,), padding=((1022, 1022),)), True),
    ("subnormal", lambda: _subnormal((1, 1, 4096)), lambda: _kernel((1, 1, 255), "plain"),
     dict(window_strides=(1,), padding="SAME"), True),
    ("ordinary-2d", lambda: _ordinary((1, 1, 256, 256)), lambda: _kernel((1, 1, 15, 15), "plain"),
     dict(window_strides=(1, 1), padding="SAME"), False),
    ("ordinary-1d-full-strided-dilated", lambda: _ordinary((1, 2, 2048)), lambda: _kernel((2, 1, 255), "plain"),
     dict(window_strides=(2,), padding=((508, 508),), rhs_dilation=(2,), feature_group_count=2), False),
]


def _ratio(y: Any, x: np.ndarray, w: np.ndarray, kwargs: dict[str, Any]) -> float:
    """The largest error over the tolerance the conformance suite allows the direct sum."""
    spec = conv_spec(x.shape, w.shape, x.dtype, w.dtype, **kwargs)
    exact = reference.conv_from_spec(x.astype(np.float64), w.astype(np.float64), spec)
    magnitude = reference.conv_from_spec(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), spec)
    allowed = magnitude * tolerances.tolerance(spec) + 1.2e-38
    return float((np.abs(np.asarray(y, dtype=np.float64) - exact) / allowed).max())


class _Spy:
    """Records what the rule decided and whether a transform ran."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, force: bool = False) -> None:
        self.decisions: list[bool] = []
        self.force = force
        real = accuracy.fits

        def fits(*args: Any, **kwargs: Any) -> bool:
            verdict = real(*args, **kwargs)
            self.decisions.append(verdict)
            return True if self.force else verdict

        monkeypatch.setattr(fft, "fits", fits)
        monkeypatch.setattr(fft_spec, "fits", fits)


def _call(backend: str, op: Callable[..., Any], x: np.ndarray, w: np.ndarray, *args: Any, **kwargs: Any) -> Any:
    if backend == "torch":
        torch = pytest.importorskip("torch", reason="PyTorch is not installed")
        result = op(torch.from_numpy(x), torch.from_numpy(w), *args, **kwargs)
        return tuple(r.numpy() for r in result) if isinstance(result, tuple) else result.numpy()
    return op(x, w, *args, **kwargs)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_auto_stays_within_the_direct_tolerance(case: Any, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, make_x, make_w, kwargs, refused = case
    x, w = make_x(), make_w()
    spy = _Spy(monkeypatch)
    y = _call(backend, polyconv.conv_general_dilated, x, w, **kwargs)
    assert spy.decisions, "the cost model did not consider FFT: the case tests nothing"
    assert not all(spy.decisions) if refused else all(spy.decisions), spy.decisions
    ratio = _ratio(y, x, w, kwargs)
    assert ratio <= 1.0, f"error {ratio:.3g} times the tolerance under use_fft('auto')"


@pytest.mark.parametrize("case", [c for c in CONV_CASES if c[4]], ids=[c[0] for c in CONV_CASES if c[4]])
def test_what_the_rule_refuses_would_break_the_tolerance(case: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The FFT result, had it been kept, misses the tolerance: the rule refuses for a reason."""
    _, make_x, make_w, kwargs, _ = case
    x, w = make_x(), make_w()
    _Spy(monkeypatch, force=True)
    y = polyconv.conv_general_dilated(x, w, **kwargs)
    assert _ratio(y, x, w, kwargs) > 1.0


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("kind", ["regions", "subnormal", "ordinary"])
def test_transpose_and_vjp_under_auto(backend: str, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    make = {"regions": _regions, "subnormal": _subnormal, "ordinary": _ordinary}[kind]
    x = make((1, 1, 4096))
    w = _kernel((511, 1, 1), "plain")  # W, I, O: conv_transpose's default layout
    xt = np.ascontiguousarray(np.moveaxis(x, 1, 2))  # N, W, C
    spy = _Spy(monkeypatch)
    y = _call(backend, polyconv.conv_transpose, xt, w, (2,), "SAME")
    spec = polyconv.spec.conv_transpose_spec(xt.shape, w.shape, "float32", "float32", (2,), "SAME")
    exact = reference.conv_transpose(xt.astype(np.float64), w.astype(np.float64), (2,), "SAME")
    magnitude = reference.conv_transpose(np.abs(xt).astype(np.float64), np.abs(w).astype(np.float64), (2,), "SAME")
    allowed = magnitude * tolerances.tolerance(spec.conv) + 1.2e-38
    assert spy.decisions
    assert float((np.abs(np.asarray(y, dtype=np.float64) - exact) / allowed).max()) <= 1.0

    wk = _kernel((1, 1, 511), "plain")
    kwargs = dict(window_strides=(1,), padding="SAME")
    g = make((1, 1, 4096))
    spy.decisions.clear()
    dx, dw = _call(backend, lambda a, b: polyconv.conv_general_dilated_vjp(a, b, _as(backend, g), **kwargs), x, wk)
    assert spy.decisions
    ex, ew = reference.conv_general_dilated_vjp(x.astype(np.float64), wk.astype(np.float64), g.astype(np.float64),
                                                **kwargs)
    mx, mw = reference.conv_general_dilated_vjp(np.abs(x).astype(np.float64), np.abs(wk).astype(np.float64),
                                                np.abs(g).astype(np.float64), **kwargs)
    spec = conv_spec(x.shape, wk.shape, "float32", "float32", **kwargs)
    lhs_plan, rhs_plan = polyconv.spec.vjp_lhs_plan(spec), polyconv.spec.vjp_rhs_plan(spec)
    for got, exact, magnitude, plan in ((dx, ex, mx, lhs_plan), (dw, ew, mw, rhs_plan)):
        allowed = magnitude * tolerances.tolerance(plan.conv) + 1.2e-38
        assert float((np.abs(np.asarray(got, dtype=np.float64) - exact) / allowed).max()) <= 1.0


def _as(backend: str, a: np.ndarray) -> Any:
    if backend == "torch":
        torch = pytest.importorskip("torch", reason="PyTorch is not installed")
        return torch.from_numpy(a)
    return a


def test_always_keeps_trading_accuracy_for_speed(monkeypatch: pytest.MonkeyPatch) -> None:
    x, w = _regions((1, 1, 96, 96)), _kernel((1, 1, 15, 15), "plain")
    spy = _Spy(monkeypatch)
    with polyconv.use_fft("always"):
        y = polyconv.conv_general_dilated(x, w, (1, 1), "SAME")
    assert spy.decisions == []  # no rule in 'always' mode: only the finiteness check
    assert _ratio(y, x, w, dict(window_strides=(1, 1), padding="SAME")) > 1.0


def test_non_finite_operands_fail_the_rule() -> None:
    p = fft.spectral_plan(Problem(1, 1, 1, 1, (64,), (15,), (64,), (1,), (1,), (7,)))
    w = np.ones((1, 1, 1, 15), np.float32)
    for bad in (np.inf, -np.inf, np.nan):
        x = np.ones((1, 1, 1, 64), np.float32)
        x[..., 5] = bad
        assert not accuracy.fits(np, x, w, p, "float32", 1)
        wb = w.copy()
        wb[..., 3] = bad
        assert not accuracy.fits(np, np.ones((1, 1, 1, 64), np.float32), wb, p, "float32", 1)


def test_outputs_that_read_only_zeros_need_no_bound() -> None:
    """A zero region wide enough that some windows read nothing: those outputs are exact zeros."""
    p = fft.spectral_plan(Problem(1, 1, 1, 1, (512,), (31,), (512,), (1,), (1,), (15,)))
    x = RNG.standard_normal((1, 1, 1, 512)).astype(np.float32)
    x[..., 100:300] = 0
    w = RNG.standard_normal((1, 1, 1, 31)).astype(np.float32)
    assert accuracy.fits(np, x, w, p, "float32", 1)

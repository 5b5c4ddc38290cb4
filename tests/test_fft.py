"""The FFT path: its geometry against brute force, the conformance suite with
FFT forced on the NumPy and torch backends, the automatic choice, the
fallbacks (non-finite operands, autograd, 64-bit and integer dtypes), the
exact zeros, ``use_fft`` and the calibration store.  No timing is asserted."""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import itertools
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from polyconv.backends import fft
from polyconv.backends.fft import transforms as fft_conv
from polyconv.backends.fft.geometry import axis_plan, fast_length
from polyconv.backends.numpy import strategy
from polyconv.conformance import tolerances
from polyconv.conformance.suite import Suite, load

import polyconv
from polyconv import caching, calibration
from polyconv.spec import conv_spec
from polyconv.spec.canonical import Problem

HAS_TORCH = importlib.util.find_spec("torch") is not None
NO_TORCH = "PyTorch is not installed: the torch backend's FFT path is not checked"


@pytest.fixture
def fft_calls(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    """Counts the FFT convolutions computed (``calls['fft']``) and the exact-zero
    counts taken by box sums (``calls['counts']``), on every backend."""
    calls: collections.Counter[str] = collections.Counter()
    inner, inner_counts = fft_conv._convolve, fft_conv.window_counts

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls["fft"] += 1
        return inner(*args, **kwargs)

    def counting_counts(*args: Any, **kwargs: Any) -> Any:
        calls["counts"] += 1
        return inner_counts(*args, **kwargs)

    monkeypatch.setattr(fft_conv, "_convolve", counting)
    monkeypatch.setattr(fft_conv, "window_counts", counting_counts)
    caching.clear()
    yield calls
    caching.clear()


def test_fast_length_is_the_next_smooth_number() -> None:
    smooth = [n for n in range(1, 3000) if _smooth(n)]
    for n in range(1, 2900):
        assert fast_length(n) == next(m for m in smooth if m >= n)


def _smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def _brute_axis(size: int, window: int, out: int, stride: int, dilation: int, low: int) -> list[bool]:
    return [any(0 <= o * stride - low + k * dilation < size for k in range(window)) for o in range(out)]


def test_axis_plan_matches_brute_force() -> None:
    """The live outputs, and one-dimensional FFT convolutions through the plan, for
    every small geometry: sizes 1-7, windows 1-4, strides and dilations 1-3,
    low and high padding -3..4 (cropping included)."""
    rng = np.random.default_rng(0)
    checked = 0
    for size, window, stride, dilation, low, high in itertools.product(
            range(1, 8), range(1, 5), range(1, 4), range(1, 4), range(-3, 5), range(-3, 5)):
        extent = (window - 1) * dilation + 1
        padded = size + low + high
        if padded < extent:
            continue
        out = (padded - extent) // stride + 1
        live = _brute_axis(size, window, out, stride, dilation, low)
        a = axis_plan(size, window, out, stride, dilation, low)
        if not any(live):
            assert a is None
            continue
        assert a is not None
        first, last = live.index(True), out - 1 - live[::-1].index(True)
        assert a.hull == (first, last + 1)
        assert set(a.dead) == {j for j in range(a.live) if not live[first + j]}
        if checked % 7 == 0:  # the arithmetic through the plan, on a seventh of them
            x, w = rng.standard_normal(size), rng.standard_normal(window)
            xp = np.zeros(padded)
            xp[max(low, 0):max(low, 0) + size + min(low, 0) + min(high, 0)] = x[max(-low, 0):size - max(-high, 0)]
            want = np.array([sum(xp[o * stride + k * dilation] * w[k] for k in range(window)) for o in range(out)])
            sp = fft.spectral_plan(Problem(1, 1, 1, 1, (size,), (window,), (out,), (stride,), (dilation,), (low,)))
            assert sp is not None
            got = fft.convolve(np, x.reshape(1, 1, 1, size), w.reshape(1, 1, 1, window), sp, np.float64, False, 1)
            full = np.zeros(out)
            full[a.hull[0]:a.hull[1]] = got.reshape(-1)
            np.testing.assert_allclose(full, want, rtol=1e-12, atol=1e-12)
            assert np.all(full[~np.array(live)] == 0)  # dead outputs exactly zero
        checked += 1
    assert checked > 4000


def _forced_suite(name: str, features: tuple[str, ...],
                  sample: int) -> tuple[collections.Counter[tuple[str, str]], list[str]]:
    be, why = load(name)
    assert be is not None, why
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    failures = []
    suite = Suite(be, False, None, features, sample=sample)
    # Only the cases FFT may take (float32/complex64 accumulation): float64, integer and
    # bool cases run directly in any mode, as in the main suite.  The curated grids of the
    # ops through the primitive are float64: they run again in float32.
    # Not the operands spread over their dtype's whole range (the extremes' 'range' values): 'always'
    # takes FFT whatever its error, and on such data it is far outside the tolerance (docs/fft.md).
    items = [_in_float32(i) for i in suite.items]
    suite.items = [i for i in items if getattr(i.case, "dtype", None) in _FFT_DTYPES
                   and getattr(i.case, "preferred_element_type", None) in (None, "float32", "complex64")
                   and getattr(i.case, "values", None) != "range"]
    with polyconv.use_fft("always"):
        for item, outcome in suite.run():
            outcomes[(item.feature, outcome.status)] += 1
            if outcome.status not in ("pass", "unsupported"):
                failures.append(f"{item.id}: {outcome.report()[:400]}")
    return outcomes, failures


_FEATURES = ("conv_general_dilated", "conv_transpose", "vjp", "patches", "local")
_FFT_DTYPES = ("float16", "bfloat16", "float32", "complex64")  # operands accumulated in float32/complex64


def _in_float32(item: Any) -> Any:
    """A float64 case of a curated grid of the ops through the primitive, in float32."""
    case = item.case
    if (item.feature not in ("conv_general_dilated", "conv_transpose", "vjp", "autodiff") or "/grid/" not in item.id
            or case.dtype != "float64" or case.preferred_element_type is not None):
        return item
    return dataclasses.replace(item, id=f"{item.id}[float32]",
                               case=dataclasses.replace(case, dtype="float32", name=f"{case.name}[float32]"))


def test_conformance_with_fft_forced_on_numpy(fft_calls: collections.Counter[str], conformance_sample: int) -> None:
    """Every case FFT can take is computed by it, and the suite passes: the FFT dtypes'
    cases of the suite, and its curated grids in float32 (sampled as the suite is)."""
    outcomes, failures = _forced_suite("numpy", _FEATURES, conformance_sample)
    assert not failures, "\n".join(failures[:10])
    assert sum(outcomes.values()) > 1500 // conformance_sample
    assert fft_calls["fft"] > 3000 // conformance_sample  # one per polyphase phase and VJP product


@pytest.mark.skipif(not HAS_TORCH, reason=NO_TORCH)
def test_conformance_with_fft_forced_on_torch(fft_calls: collections.Counter[str], conformance_sample: int) -> None:
    outcomes, failures = _forced_suite("torch", (*_FEATURES, "autodiff"), conformance_sample)
    assert not failures, "\n".join(failures[:10])
    assert sum(outcomes.values()) > 2000 // conformance_sample
    assert fft_calls["fft"] > 1500 // conformance_sample
    # lhs dilation stuffs the input with zeros: their exact zeros are counted by box sums
    assert fft_calls["counts"] > 500 // conformance_sample


def _spec(lhs: tuple[int, ...], rhs: tuple[int, ...], dtype: str = "float32", groups: int = 1) -> Any:
    n = len(lhs) - 2
    return conv_spec(lhs, rhs, dtype, dtype, (1,) * n, "SAME", feature_group_count=groups)


def test_auto_takes_fft_for_large_kernels_only() -> None:
    caching.clear()
    large = [
        _spec((4, 64, 64, 64), (64, 1, 31, 31), groups=64),  # depthwise 31x31
        _spec((8, 16, 16384), (16, 1, 1023), groups=16),  # 1023 taps
        _spec((4, 64, 64, 64), (64, 1, 31, 31), "float16", groups=64),
        _spec((4, 64, 64, 64), (64, 1, 31, 31), "complex64", groups=64),
    ]
    for spec in large:
        assert strategy.choose(spec, "auto").name == "fft", spec
        assert strategy.choose(spec, "never").name != "fft"
    small = [_spec((8, 64, 56, 56), (64, 64, 3, 3)), _spec((8, 256, 14, 14), (256, 256, 1, 1)),
             _spec((8, 64, 56, 56), (64, 1, 3, 3), groups=64)]
    for spec in small:
        assert strategy.choose(spec, "auto").name != "fft", spec
        assert strategy.choose(spec, "always").name == "fft", spec
    for dtype in ("float64", "complex128", "int32", "bool"):  # never, whatever the mode
        spec = _spec((4, 64, 64, 64), (64, 1, 31, 31), dtype, groups=64)
        assert strategy.choose(spec, "always").name != "fft", dtype


def test_numpy_costs_few_outputs_at_the_rate_its_products_have_for_them(fft_calls: collections.Counter[str]) -> None:
    """The NumPy backend's ``offsets`` products have a group's outputs as their columns, and
    BLAS runs few columns at a fraction of its rate: the FFT decision takes the dense rate
    times ``og / 16`` below 16 outputs (3 channels to 1 with a 15x15 kernel: 22.9 ms
    directly, 5.1 by FFT, on a 4x128x128 input), and the dense rate from 16 outputs."""
    caching.clear()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 64, 64), dtype=np.float32)
    w = rng.standard_normal((1, 3, 15, 15), dtype=np.float32)
    few = _spec(x.shape, w.shape)
    chosen = strategy.choose(few, "auto")
    dense_rate = calibration.constants("numpy").direct_flops
    assert chosen.name == "fft" and f"its direct path at {dense_rate / 16 / 1e9:.3g} GFLOP/s" in chosen.why
    assert strategy.choose(few, "never").name == "offsets"
    many = strategy.choose(_spec((2, 3, 64, 64), (16, 3, 15, 15)), "auto")
    assert many.name == "offsets" and "GFLOP/s" not in many.why
    with polyconv.use_fft("auto"):
        y = polyconv.conv_general_dilated(x, w, (1, 1), "SAME")
    assert fft_calls["fft"] == 1
    tolerances.assert_close(y, x, w, few)


@pytest.mark.parametrize("shape", ["depthwise-31", "taps-1023", "image-15", "dense-dilated"])
def test_large_kernels_by_fft_are_within_the_conformance_tolerance(
        shape: str, fft_calls: collections.Counter[str]) -> None:
    rng = np.random.default_rng(1)
    lhs, rhs, groups, kw = {
        "depthwise-31": ((1, 8, 48, 48), (8, 1, 31, 31), 8, {}),
        "taps-1023": ((2, 4, 4096), (4, 1, 1023), 4, {}),
        "image-15": ((1, 1, 256, 256), (1, 1, 15, 15), 1, {}),
        "dense-dilated": ((2, 6, 40, 40), (4, 3, 9, 9), 2, {"window_strides": (2, 1), "rhs_dilation": (2, 3),
                                                              "padding": ((5, 9), (-3, 12))}),
    }[shape]
    x = rng.standard_normal(lhs).astype(np.float32)
    w = rng.standard_normal(rhs).astype(np.float32)
    args = {"window_strides": (1,) * (len(lhs) - 2), "padding": "SAME", **kw}
    with polyconv.use_fft("always"):
        y = polyconv.conv_general_dilated(x, w, feature_group_count=groups, **args)
    assert fft_calls["fft"] == 1
    spec = conv_spec(x.shape, w.shape, "float32", "float32", args["window_strides"], args["padding"],
                     rhs_dilation=args.get("rhs_dilation"), feature_group_count=groups)
    tolerances.assert_close(y, x, w, spec)


def test_non_finite_operands_run_directly(fft_calls: collections.Counter[str]) -> None:
    """A transform would spread an infinity over the whole result: such calls
    take the direct strategy, and give its NaN and infinity pattern."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 30, 30)).astype(np.float32)
    w = rng.standard_normal((3, 3, 9, 9)).astype(np.float32)
    x[0, 1, 4, 7] = np.inf
    x[1, 2, 20, 3] = np.nan
    with polyconv.use_fft("always"):
        y = polyconv.conv_general_dilated(x, w, (1, 1), "SAME")
    assert fft_calls["fft"] == 0
    with polyconv.use_fft("never"):
        direct = polyconv.conv_general_dilated(x, w, (1, 1), "SAME")
    np.testing.assert_array_equal(y, direct)
    assert np.isfinite(y).mean() > 0.5


def test_window_counts_match_brute_force() -> None:
    """The nonzero input elements each live output's window reads (the exact-zero
    rule with a kernel free of zeros), by box sums: against a direct count on
    random 1-3-d geometries (strides and dilations 1-3, padding -2..3, sparse
    inputs over 1-3 channels per group)."""
    rng = np.random.default_rng(11)
    checked = 0
    while checked < 300:
        n = int(rng.integers(1, 4))
        sizes = tuple(int(v) for v in rng.integers(1, 8, n))
        window = tuple(int(v) for v in rng.integers(1, 4, n))
        strides, dilation = (tuple(int(v) for v in rng.integers(1, 4, n)) for _ in range(2))
        low, high = (tuple(int(v) for v in rng.integers(-2, 4, n)) for _ in range(2))
        extent = [(k - 1) * d + 1 for k, d in zip(window, dilation)]
        padded = [sz + lo + hi for sz, lo, hi in zip(sizes, low, high)]
        if any(pd < e for pd, e in zip(padded, extent)):
            continue
        out = tuple((pd - e) // st + 1 for pd, e, st in zip(padded, extent, strides))
        batch, groups, cg = (int(v) for v in rng.integers(1, 4, 3))
        sp = fft.spectral_plan(Problem(batch, groups, cg, 1, sizes, window, out, strides, dilation, low))
        if sp is None:
            continue
        x = rng.standard_normal((batch, groups, cg, *sizes)) * (rng.random((batch, groups, cg, *sizes)) < 0.4)
        got = fft_conv.window_counts(np, x, sp)
        want = np.zeros((batch, groups, 1, *(a.live for a in sp.axes)), np.int64)
        for j in itertools.product(*(range(a.live) for a in sp.axes)):
            for k in itertools.product(*(range(kk) for kk in window)):
                pos = [(a.hull[0] + jj) * st - lo + kk * d
                       for a, jj, st, lo, kk, d in zip(sp.axes, j, strides, low, k, dilation)]
                if all(0 <= q < sz for q, sz in zip(pos, sizes)):
                    want[(Ellipsis, 0, *j)] += (x[(Ellipsis, *pos)] != 0).sum(axis=-1)
        assert got.shape == want.shape and np.array_equal(got, want), (sizes, window, strides, dilation, low)
        checked += 1


def _on_one_and_three_threads(monkeypatch: pytest.MonkeyPatch, x: np.ndarray, w: np.ndarray,
                              **kwargs: Any) -> list[int]:
    """Convolve ``x`` and ``w`` by FFT on one NumPy thread and on three; check
    that both give the values of one thread and of the float64 reference, and
    return the number of pieces of each ``parallel.run_chunks`` call made."""
    from polyconv.backends.numpy import parallel

    runs: list[int] = []
    inner = parallel.run_chunks

    def recording(work: Any, chunks: Any, min_chunks: int = 2) -> None:
        runs.append(len(chunks))
        inner(work, chunks, min_chunks)

    monkeypatch.setattr(parallel, "run_chunks", recording)
    results = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("POLYCONV_NUMPY_THREADS", threads)
        with polyconv.use_fft("always"):
            results[threads] = polyconv.conv_general_dilated(x, w, **kwargs)
    recorded = list(runs)  # the FFT calls' alone, not the reference's (a direct strategy may run chunks too)
    np.testing.assert_allclose(results["3"], results["1"], rtol=1e-6, atol=1e-6)
    ref = polyconv.conv_general_dilated(x.astype(np.float64), w.astype(np.float64), **kwargs)
    np.testing.assert_allclose(results["3"], ref, rtol=1e-4, atol=1e-4)
    return recorded


def test_numpy_chunks_of_the_batch_run_on_the_threads(monkeypatch: pytest.MonkeyPatch,
                                                     fft_calls: collections.Counter[str]) -> None:
    """On the NumPy backend the batch's chunks go on the backend's threads (each a
    part of the chunk that fits the workspace) and give one thread's values."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 8, 24, 24)).astype(np.float32)
    w = rng.standard_normal((8, 4, 9, 9)).astype(np.float32)
    runs = _on_one_and_three_threads(monkeypatch, x, w, window_strides=(1, 1), padding="SAME",
                                     feature_group_count=2)
    assert fft_calls["fft"] == 2
    # three threads: the kernel's two passes in three pieces each, then the batch of 6 in three chunks of 2
    # (whose passes are not split); one thread: no pool
    assert runs == [3, 3, 3]


def test_numpy_passes_of_one_image_are_split_over_the_threads(monkeypatch: pytest.MonkeyPatch,
                                                              fft_calls: collections.Counter[str]) -> None:
    """A batch of one image is one chunk: then each pass of its transforms (and
    of the kernel's) is cut along another axis into a piece per thread, and
    the pieces give one thread's values."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 2, 48, 40)).astype(np.float32)
    w = rng.standard_normal((3, 2, 11, 9)).astype(np.float32)
    runs = _on_one_and_three_threads(monkeypatch, x, w, window_strides=(1, 1), padding=((3, 2), (4, 1)),
                                     rhs_dilation=(1, 2))
    assert fft_calls["fft"] == 2
    # three threads: the kernel's two passes, the image's two forward and two inverse ones, three pieces each
    assert runs == [3] * 6


def test_products_of_zeros_stay_exact_zeros(fft_calls: collections.Counter[str]) -> None:
    """Where every product is zero (zeros of the data, padding, the holes of
    the dilations) the result is exactly zero, as a direct sum leaves it."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 40, 40)).astype(np.float32)
    x[:, :, :20] = 0  # a zero half
    w = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    with polyconv.use_fft("always"):
        y = polyconv.conv_general_dilated(x, w, (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 1))
    assert fft_calls["fft"] > 0
    ref = polyconv.conv_general_dilated(x.astype(np.float64), w.astype(np.float64), (1, 1), ((2, 2), (2, 2)),
                                        lhs_dilation=(2, 1))
    assert np.array_equal(y == 0, ref == 0)
    assert (ref == 0).sum() > 1000
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    assert fft_calls["counts"] > 0  # a kernel free of zeros: box sums
    # a kernel with zeros of its own: the count is a transform of both indicators
    w[:, :, 1:, 2] = 0
    x[:, :, 20:, ::3] = 0
    with polyconv.use_fft("always"):
        y = polyconv.conv_general_dilated(x, w, (1, 1), ((2, 2), (2, 2)))
    ref = polyconv.conv_general_dilated(x.astype(np.float64), w.astype(np.float64), (1, 1), ((2, 2), (2, 2)))
    assert np.array_equal(y == 0, ref == 0) and 0 < (ref == 0).sum() < ref.size
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_use_fft_checks_its_mode_and_nests() -> None:
    with pytest.raises(polyconv.ConvArgumentError, match=r"use_fft: mode must be one of .*got 'fast'"):
        with polyconv.use_fft("fast"):
            pass
    with pytest.raises(polyconv.ConvTypeError, match="mode"):
        with polyconv.use_fft(True):  # type: ignore[arg-type]
            pass
    assert polyconv.fft_mode() == "auto"
    with polyconv.use_fft("never"):
        with polyconv.use_fft("always"):
            assert polyconv.fft_mode() == "always"
        assert polyconv.fft_mode() == "never"
    assert polyconv.fft_mode() == "auto"


def test_the_call_cache_follows_the_mode(fft_calls: collections.Counter[str]) -> None:
    x, w = np.ones((1, 1, 64), np.float32), np.ones((1, 1, 9), np.float32)
    for mode, expected in (("always", 1), ("never", 1), ("always", 2), ("auto", 2)):
        with polyconv.use_fft(mode):
            y = polyconv.conv_general_dilated(x, w, (1,), "VALID")
        np.testing.assert_allclose(y, 9.0, rtol=1e-6)
        assert fft_calls["fft"] == expected, mode


@pytest.mark.skipif(not HAS_TORCH, reason=NO_TORCH)
def test_torch_takes_fft_in_auto_and_not_while_autograd_records(fft_calls: collections.Counter[str]) -> None:
    import torch

    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.standard_normal((2, 4, 4096)).astype(np.float32))
    w = torch.from_numpy(rng.standard_normal((4, 1, 1023)).astype(np.float32))
    y = polyconv.conv_general_dilated(x, w, (1,), "SAME", feature_group_count=4)
    assert fft_calls["fft"] == 1
    spec = conv_spec(x.shape, w.shape, "float32", "float32", (1,), "SAME", feature_group_count=4)
    tolerances.assert_close(y.numpy(), x.numpy(), w.numpy(), spec)
    xg = x.clone().requires_grad_(True)
    polyconv.conv_general_dilated(xg, w, (1,), "SAME", feature_group_count=4).sum().backward()
    assert fft_calls["fft"] == 1  # autograd records: the direct path, whose gradients are exact
    assert xg.grad is not None and xg.grad.shape == x.shape


@pytest.fixture
def calibration_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    path = tmp_path / "calibration.json"
    monkeypatch.setenv("POLYCONV_CALIBRATION", str(path))
    caching.clear()
    yield path
    caching.clear()


def test_calibration_is_stored_per_backend_and_changes_the_choice(calibration_file: Any) -> None:
    spec = _spec((4, 64, 64, 64), (64, 1, 31, 31), groups=64)
    assert calibration.constants("numpy") == calibration.DEFAULTS
    assert strategy.choose(spec, "auto").name == "fft"
    slow_fft = calibration.Constants(direct_flops=1e12, depthwise_flops=1e12, depthwise_large_flops=1e12,
                                  fft_points=1e3, product_flops=1e6)
    assert calibration.save("numpy", slow_fft, threads=2) == calibration_file
    assert calibration.constants("numpy") == slow_fft
    assert calibration.constants("torch") == calibration.DEFAULTS
    assert strategy.choose(spec, "auto").name != "fft"  # save() forgot the earlier decision
    assert strategy.choose(spec, "always").name == "fft"  # forcing ignores the cost model
    stored = json.loads(calibration_file.read_text())
    assert stored["backends"]["numpy"]["threads"] == 2


@pytest.mark.parametrize("text", ["", "{", "[]", '{"backends": {"numpy": {"direct_flops": -1}}}'])
def test_a_broken_calibration_file_gives_the_defaults(calibration_file: Any, text: str) -> None:
    calibration_file.write_text(text)
    assert calibration.constants("numpy") == calibration.DEFAULTS


def test_a_backends_own_direct_rate_replaces_its_rates_classes() -> None:
    """``decide(direct_flops=...)``: the direct path's time is its operations at that rate,
    whatever the problem's class, and the reason says which rate decided."""
    from polyconv.backends.fft.decision import decide, direct_seconds

    p = Problem(8, 1, 3, 1, (128, 128), (9, 9), (128, 128), (1, 1), (1, 1), (4, 4))  # 3 channels to 1
    by_class = decide(p, "float32", "auto", "numpy")
    slow = decide(p, "float32", "auto", "numpy", direct_flops=3e9)
    assert not by_class.use and slow.use and "its direct path at 3 GFLOP/s" in slow.why
    assert slow.direct_seconds == pytest.approx(2.0 * 8 * 3 * 128 * 128 * 81 / 3e9)
    assert slow.fft_seconds == by_class.fft_seconds
    assert direct_seconds(slow.plan, False, calibration.DEFAULTS, 3e9) == slow.direct_seconds
    assert not decide(p, "float32", "auto", "numpy", direct_flops=1e15).use


@pytest.mark.slow
def test_fft_memory_stays_within_the_workspace(fft_calls: collections.Counter[str]) -> None:
    """A batch whose transforms exceed the workspace is taken in chunks of images:
    the peak of what NumPy allocates stays under 512 MiB, the result intact."""
    import tracemalloc

    rng = np.random.default_rng(5)
    x = rng.standard_normal((24, 64, 64, 64), dtype=np.float32)
    x[x == 0] = 1  # no exact zero: one transform, not the second one that keeps zeros exact
    w = rng.standard_normal((64, 1, 31, 31), dtype=np.float32)
    spec = _spec(x.shape, w.shape, groups=64)
    decision = fft.decide(Problem(24, 64, 1, 1, (64, 64), (31, 31), (64, 64), (1, 1), (1, 1), (15, 15)),
                          "float32", "always", "numpy")
    assert decision.use and 1 <= decision.chunk < 24, decision
    tracemalloc.start()
    try:
        y = polyconv.conv_general_dilated(x, w, (1, 1), "SAME", feature_group_count=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fft_calls["fft"] == 1
    assert peak < (512 << 20), peak
    with polyconv.use_fft("never"):
        direct = polyconv.conv_general_dilated(x[:2], w, (1, 1), "SAME", feature_group_count=64)
    tolerances.assert_close(y[:2], x[:2], w, _spec(x[:2].shape, w.shape, groups=64))
    np.testing.assert_allclose(y[:2], direct, rtol=1e-4, atol=1e-3)
    assert spec.out_shape == y.shape


@pytest.mark.slow
def test_the_calibrate_command_measures_in_a_process_of_its_own_and_stores(calibration_file: Any,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from polyconv import cli

    assert cli.main(["calibrate", "--backend", "numpy", "--budget", "0.01", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "numpy: direct_flops" in out and str(calibration_file) in out
    stored = json.loads(calibration_file.read_text())["backends"]["numpy"]
    assert stored["threads"] == 1
    measured = calibration.constants("numpy")
    assert measured != calibration.DEFAULTS
    for name in ("direct_flops", "depthwise_flops", "depthwise_large_flops", "fft_points", "product_flops"):
        assert stored[name] == getattr(measured, name) > 1e6  # a rate in flop/s, not seconds


def test_the_calibrate_command_refuses_a_backend_without_fft(calibration_file: Any,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from polyconv import cli

    assert cli.main(["calibrate", "--backend", "jax"]) == 2
    assert "jax: no FFT path" in capsys.readouterr().err
    assert not calibration_file.exists()


@pytest.mark.skipif(importlib.util.find_spec("dask") is None,
                    reason="dask is not installed (pip install 'polyconv[dask]')")
@pytest.mark.parametrize("mode", ["always", "never"])
def test_dask_blocks_take_the_mode_of_the_call_that_made_the_graph(
        mode: str, fft_calls: collections.Counter[str]) -> None:
    """The blocks run later, in dask's worker threads (which do not see the caller's
    context): the mode travels in the graph, the forward's and the kernel cotangent's."""
    import dask.array as da

    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 96), dtype=np.float32)
    w = rng.standard_normal((4, 1, 33), dtype=np.float32)
    cot = rng.standard_normal((2, 4, 96), dtype=np.float32)
    lazy = da.from_array(x, chunks=(1, 4, 48))
    with polyconv.use_fft(mode):
        y = polyconv.conv_general_dilated(lazy, w, (1,), "SAME", feature_group_count=4)
        _, dw = polyconv.conv_general_dilated_vjp(lazy, w, da.from_array(cot, chunks=(1, 4, 48)), (1,), "SAME",
                                                  feature_group_count=4)
    assert fft_calls["fft"] == 0  # nothing computed yet
    with polyconv.use_fft("auto" if mode == "always" else "always"):  # the computing context's mode is ignored
        got, got_dw = y.compute(scheduler="threads"), dw.compute(scheduler="threads")
    assert (fft_calls["fft"] > 0) == (mode == "always")
    want = polyconv.conv_general_dilated(x, w, (1,), "SAME", feature_group_count=4, backend="numpy")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    with polyconv.use_fft("never"):
        _, want_dw = polyconv.conv_general_dilated_vjp(x, w, cot, (1,), "SAME", feature_group_count=4)
    np.testing.assert_allclose(got_dw, want_dw, rtol=1e-4, atol=1e-3)

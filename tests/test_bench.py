"""python -m polyconv bench: each pair computes the same convolution, and the report is complete.

Timings are never asserted: only that both sides of every pair agree, so a
ratio compares like with like.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from polyconv.bench import calls as bench_calls

from polyconv import bench
from polyconv.cli import main


def _small(shape: bench.Shape) -> bench.Shape:
    """The shape with a batch of 1, 3 channels per group at most, and spatial sizes of at most 9."""
    g = shape.groups
    c_in = min(shape.lhs[1], 3 * g)
    lhs = (1, c_in, *(min(s, 9) for s in shape.lhs[2:]))
    if shape.transpose:
        rhs = (c_in, min(shape.rhs[1], 2), *shape.rhs[2:])
    else:
        rhs = (min(shape.rhs[0], 2 * g), c_in // g, *shape.rhs[2:])
    return dataclasses.replace(shape, lhs=lhs, rhs=rhs)


@pytest.mark.parametrize("shape", bench.SUITE, ids=lambda s: s.name)
def test_every_pair_computes_the_same_convolution(shape: bench.Shape) -> None:
    pytest.importorskip("torch", reason="the bench's native side for the NumPy and torch backends is PyTorch")
    small = _small(shape)
    rng = np.random.default_rng(0)
    for backend in ("numpy", "torch", "jax", "mlx"):
        if backend in ("jax", "mlx"):
            pytest.importorskip(backend, reason=f"{backend} is not installed")
        for _, mine, native in bench_calls.pairs(backend, small, rng):
            got, want = np.asarray(mine()), np.asarray(native())
            if backend == "mlx":  # channels-last on both sides: MLX's layout
                got, want = np.moveaxis(got, -1, 1), np.moveaxis(want, -1, 1)
            assert got.shape == want.shape == (1, *want.shape[1:2], *small.out_spatial())
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_flops_count_products_with_input_elements() -> None:
    s = bench.Shape("x", (2, 4, 10), (6, 2, 3), groups=2, padding=1)
    assert s.out_spatial() == (10,) and s.flops() == 2 * 2 * 6 * 10 * 2 * 3


@pytest.mark.slow
def test_cli_writes_a_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--backend", "numpy", "--only", "tiny", "--budget", "0.05", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["isolated"] and report["matmul_gflops"] > 0
    rates = report["matmul_gflops_by_framework"]
    assert rates["numpy"] > 0 and all(v > 0 for v in rates.values())
    assert {r["shape"] for r in report["results"]} == {"tiny 1ch 8x8 3x3"}
    for r in report["results"]:
        assert r["ratio"] == pytest.approx(r["polyconv_s"] / r["native_s"])
        assert isinstance(r["polyconv_peak_extra_bytes"], int) and r["polyconv_peak_extra_bytes"] >= 0
    out = capsys.readouterr().out
    assert "median ratio numpy" in out and "peak extra" in out and "timed alone" in out


def test_rounds_keep_each_sides_fastest_process(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """With --rounds every side's process runs that many times, the rounds one
    after the other, and each side keeps its fastest time per shape."""
    from polyconv.bench import runner

    calls: list[str] = []
    times = {"polyconv numpy": [[3.0, 1.0], [2.0, 4.0]], "torch CPU": [[5.0, 5.0], [6.0, 1.0]]}

    def fake_side(backend: str, side: str, shapes: Any, budget: float, threads: Any) -> dict[str, Any]:
        calls.append(side)
        seconds = times[side][sum(c == side for c in calls) - 1] if side in times else [None, None]
        return {"seconds": seconds, "peak_extra_bytes": [7, 8], "matmul_gflops": 10.0 * len(calls)}

    monkeypatch.setattr(runner, "run_side", fake_side)
    monkeypatch.setattr(runner, "importable", lambda name: name == "torch")
    shapes = bench.SUITE[:2]
    report = runner.run(["numpy"], shapes, rounds=2)
    assert calls == ["polyconv numpy", "torch CPU", "polyconv numpy", "torch CPU"]  # round after round
    rows = {r["shape"]: r for r in report["results"]}
    first, second = (rows[s.name] for s in shapes)
    assert (first["polyconv_s"], first["native_s"], second["polyconv_s"], second["native_s"]) == (2.0, 5.0, 1.0, 1.0)
    assert first["polyconv_matmul_gflops"] == 30.0 and first["native_matmul_gflops"] == 40.0
    assert report["rounds"] == 2 and first["polyconv_peak_extra_bytes"] == 7
    assert "fastest of 2 rounds" in bench.format_report(report)
    with pytest.raises(ValueError, match="rounds"):
        runner.run(["numpy"], shapes, rounds=0)
    assert main(["bench", "--backend", "numpy", "--rounds", "0"]) == 2
    assert "--rounds must be at least 1, got 0" in capsys.readouterr().err


def test_figures_above_the_measured_peak_are_flagged_not_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """The peak is the best matrix product of any side's framework in the run; a direct side above it
    is a measurement error (printed as such, listed in the JSON), an FFT side above it is effective."""
    from polyconv.bench import runner

    shapes = bench.SUITE[:2]
    flops = [s.flops() for s in shapes]

    def fake_side(backend: str, side: str, shapes_: Any, budget: float, threads: Any) -> dict[str, Any]:
        if side == "polyconv numpy":  # 200 GFLOP/s by FFT, then 50 GFLOP/s direct
            return {"seconds": [flops[0] / 200e9, flops[1] / 50e9], "peak_extra_bytes": [0, 0],
                    "matmul_gflops": 90.0, "matmul_best_gflops": 100.0, "strategies": ["fft", "offsets"]}
        return {"seconds": [flops[0] / 20e9, flops[1] / 150e9], "peak_extra_bytes": [None, None],  # 1.5x the peak
                "matmul_gflops": 80.0, "matmul_best_gflops": 95.0, "strategies": ["direct", "direct"]}

    monkeypatch.setattr(runner, "run_side", fake_side)
    monkeypatch.setattr(runner, "importable", lambda name: name == "torch")
    report = runner.run(["numpy"], shapes)
    assert report["peak_gflops"] == 100.0
    first, second = report["results"]
    assert first["polyconv_of_peak"] == pytest.approx(2.0) and not first["polyconv_above_peak"]
    assert second["native_of_peak"] == pytest.approx(1.5) and second["native_above_peak"]
    assert [r["shape"] for r in report["above_peak"]] == [shapes[1].name]
    text = bench.format_report(report)
    assert "ERROR>peak" in text and f"MEASUREMENT ERROR: numpy {shapes[1].name} vs torch CPU: native at 1.50" in text
    assert "2.00*" in text and "above the peak by FFT" in text
    assert "1.50" not in text.split("MEASUREMENT ERROR")[0]  # the figure is never printed as a result


def test_peak_extra_bytes_counts_numpy_temporaries_not_the_result() -> None:
    def call() -> np.ndarray:
        result = np.ones(1 << 16, np.uint8)  # allocated first, as a convolution allocates its output
        scratch = np.ones(1 << 20, np.uint8)  # 1 MiB, freed before returning
        del scratch
        return result

    extra = bench.peak_extra_bytes(call)
    assert (1 << 20) <= extra < (1 << 20) + (1 << 16)


def test_cli_refuses_an_unavailable_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--backend", "nosuch"]) == 2  # not registered: polyconv's one-line error
    assert "error: backend: no backend named 'nosuch' is registered" in capsys.readouterr().err
    assert main(["bench", "--backend", "toy"]) == 2  # registered, but no framework op to compare with
    assert "not available here" in capsys.readouterr().err


@pytest.mark.slow
def test_dask_cluster_bench_reports_every_figure() -> None:
    """``bench --backend dask`` on a small input, one worker: the dask result equals
    NumPy's, and every figure of the report is there (times are not asserted)."""
    pytest.importorskip("distributed", reason="the dask bench needs dask.distributed")
    from polyconv.bench.cluster import format_cluster, run_cluster

    report = run_cluster(workers=(1,), repeats=1, shape=(2, 4, 40, 30), chunks=(1, 4, 20, 15), kernel=(3, 4, 3, 3))
    (run,) = report["clusters"]
    assert run["max_abs_diff"] < 1e-4
    assert run["blocks"] == 8 and run["tasks"] > run["blocks"]
    assert all(p > 0 for p in run["peak_rss_per_worker"])
    text = format_cluster(report)
    assert "| 1 | " in text and "peak RSS per worker" in text



def test_a_side_imports_no_other_framework() -> None:
    """The NumPy backend's side, as its process runs it, imports neither PyTorch nor JAX."""
    import subprocess
    import sys

    code = (
        "import sys, polyconv.bench.isolated as iso, polyconv.bench as b\n"
        "from polyconv.bench.calls import side_call\n"
        "s = [x for x in b.SUITE if 'tiny' in x.name][0]\n"
        "side_call('numpy', 'polyconv numpy', s, *iso.operands(s))()\n"
        "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plot_draws_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib")
    from polyconv.bench.plot import plot_report

    rows = [{"backend": b, "native": n, "shape": s, "ratio": r} for b, n, s, r in (
        ("numpy", "torch CPU", "a", 1.2), ("numpy", "torch CPU", "b", 0.7), ("torch", "torch.nn.functional", "a", 1.0))]
    path = tmp_path / "ratios.png"
    plot_report({"results": rows}, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_the_fixed_cost_compares_the_same_tiny_convolution(backend: str) -> None:
    """Both sides of the fixed-cost measurement compute the same values (checked inside), and the
    report has each side's microseconds; no timing is asserted."""
    from polyconv.bench import overhead

    if backend != "numpy":
        pytest.importorskip(backend, reason=f"{backend} is not installed")
    row = overhead.measure(backend, budget=0.05)
    assert row["backend"] == backend and row["polyconv_us"] > 0 and row["native_us"] > 0
    assert row["over_us"] == pytest.approx(row["polyconv_us"] - row["native_us"])
    assert f"{backend}: polyconv" in overhead.format_overhead([row])


def test_the_gradient_comparison_checks_both_sides_values() -> None:
    """The gradient timing differentiates the same loss on both sides and checks their gradients
    agree before timing them (on a small depthwise shape here); no timing is asserted."""
    pytest.importorskip("jax", reason="JAX is not installed")
    from polyconv.bench import gradients

    small = bench.Shape("small depthwise", (2, 8, 12, 12), (8, 1, 3, 3), padding=1, groups=8)
    row = gradients.measure(small, budget=0.05)
    assert row["shape"] == "small depthwise" and row["strategy"] == "depthwise"
    assert row["polyconv_s"] > 0 and row["native_s"] > 0
    assert row["ratio"] == pytest.approx(row["polyconv_s"] / row["native_s"])
    assert "small depthwise: polyconv" in gradients.format_gradients([row])
    assert [s.name for s in gradients.SHAPES] == [
        "depthwise 3x3 128ch 56x56", "large depthwise 31x31 64ch 64x64", "large 15x15 image 1024x1024",
        "large 1-d 1023 taps 16ch 16384"]


def test_gemm_products_are_the_numpy_backends_own() -> None:
    """The products the bench times alone are those the NumPy backend makes: for the ResNet 3x3
    they hold every multiply-add of the convolution (and the padded columns' few more)."""
    from polyconv.backends.numpy import offsets
    from polyconv.bench import gemm

    resnet = bench.SUITE[0]
    sizes = gemm.products(resnet)
    assert sizes is not None
    macs = resnet.flops() / 2
    total = sum(g * m * k * n for g, m, k, n in sizes)
    assert macs <= total <= 1.1 * macs
    calls: list[tuple[int, ...]] = []
    run = offsets.run

    def spy(plan: Any, x: Any, w: Any, y: Any, compute: Any) -> None:
        calls.append(tuple(offsets.products(plan)))
        run(plan, x, w, y, compute)

    smaller = dataclasses.replace(resnet, lhs=(1, 64, 24, 24))
    import unittest.mock

    with unittest.mock.patch.object(offsets, "run", spy):
        x, w = np.ones(smaller.lhs, np.float32), np.ones(smaller.rhs, np.float32)
        polyconv_call = bench_calls.side_call("numpy", "polyconv numpy", smaller, x, w)
        assert polyconv_call is not None
        polyconv_call()
    assert calls == [tuple(gemm.products(smaller) or ())] and len(calls[0]) >= 3
    assert gemm.products(bench.SUITE[3]) is None  # depthwise: no GEMM
    share = gemm.in_gemm(smaller, polyconv_call, 0.05)
    assert share is not None and share > 0


def test_report_gives_the_numpy_backends_time_in_gemm() -> None:
    row = {"backend": "numpy", "shape": "s", "native": "torch CPU", "polyconv_s": 2.0, "native_s": 1.0, "ratio": 2.0,
           "polyconv_gflops": 1.0, "native_gflops": 2.0, "polyconv_of_matmul": 0.1, "native_of_matmul": 0.2,
           "polyconv_in_gemm": 0.75}
    text = bench.format_report({"matmul_gflops": 10.0, "threads": None, "results": [row]})
    assert "time in GEMM" in text and "s 0.75" in text


def test_a_figure_within_the_peaks_spread_between_processes_is_marked_not_flagged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each CPU process measures the same product; how far their best rates differ is the
    peak's own uncertainty: a direct figure above the peak by less is marked '~', by more flagged."""
    from polyconv.bench import runner

    shapes = bench.SUITE[:2]
    flops = [s.flops() for s in shapes]

    def fake_side(backend: str, side: str, shapes_: Any, budget: float, threads: Any) -> dict[str, Any]:
        if side == "polyconv numpy":  # its product at 100 GFLOP/s, the other process's at 96: a 4% spread
            return {"seconds": [flops[0] / 50e9, flops[1] / 50e9], "peak_extra_bytes": [0, 0], "matmul_gflops": 99.0,
                    "matmul_best_gflops": 100.0, "machine_best_gflops": 100.0, "strategies": ["offsets"] * 2}
        return {"seconds": [flops[0] / 103e9, flops[1] / 110e9], "peak_extra_bytes": [None, None],
                "matmul_gflops": 90.0, "matmul_best_gflops": 92.0, "machine_best_gflops": 96.0,
                "strategies": ["direct", "direct"]}

    monkeypatch.setattr(runner, "run_side", fake_side)
    monkeypatch.setattr(runner, "importable", lambda name: name == "torch")
    report = runner.run(["numpy"], shapes)
    assert report["peak_gflops"] == 100.0 and report["peak_spread"] == pytest.approx(100 / 96 - 1)
    within, beyond = report["results"]
    assert within["native_within_spread"] and not within["native_above_peak"]
    assert beyond["native_above_peak"] and not beyond["native_within_spread"]
    text = bench.format_report(report)
    assert "1.03~" in text and "within the peak's own uncertainty" in text and "4.2% between its processes" in text
    assert "MEASUREMENT ERROR" in text and "1.10 of the peak" in text

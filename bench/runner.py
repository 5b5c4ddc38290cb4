"""The run: every backend asked for, every shape, timed pair by pair into one report."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

from .calls import importable, pairs
from .shapes import SUITE, Shape
from .timing import matmul_rate, numpy_peak, time_pair

__all__ = ["run"]


def _progress(i: int, total: int, label: str) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    done = width * i // max(total, 1)
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{total} {label[:50]:50s}")
    sys.stderr.flush()
    if i == total:
        sys.stderr.write("\n")


def run(backends: list[str], shapes: tuple[Shape, ...] = SUITE, budget: float = 2.0,
        threads: int | None = None) -> dict[str, Any]:
    """Run the suite; returns the report (what ``--json`` writes)."""
    import numpy as np

    if threads is not None and importable("torch"):
        import torch

        torch.set_num_threads(threads)
    rate = matmul_rate()
    rng = np.random.default_rng(0)
    results = []
    jobs = [(b, s) for b in backends for s in shapes]
    for i, (backend, shape) in enumerate(jobs):
        _progress(i, len(jobs), f"{backend}: {shape.name}")
        calls = pairs(backend, shape, rng)
        # tracemalloc sees NumPy's allocations only: the NumPy backend's peak memory
        peak = numpy_peak(calls[0][1]) if backend == "numpy" and calls else None
        for native_name, mine, native in calls:
            t_mine, t_native = time_pair(mine, native, budget)
            flops = shape.flops()
            results.append({
                "backend": backend, "shape": shape.name, "native": native_name,
                "polyconv_s": t_mine, "native_s": t_native, "ratio": t_mine / t_native,
                "polyconv_peak_extra_bytes": peak,
                "polyconv_gflops": flops / t_mine / 1e9, "native_gflops": flops / t_native / 1e9,
                "polyconv_of_matmul": flops / t_mine / 1e9 / rate, "native_of_matmul": flops / t_native / 1e9 / rate,
                "spec": asdict(shape),
            })
    _progress(len(jobs), len(jobs), "done")
    return {"matmul_gflops": rate, "threads": threads, "results": results}

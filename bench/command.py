"""``python -m polyconv bench``: the command behind :func:`polyconv.cli.main`'s ``bench``."""

from __future__ import annotations

import json
import sys

from .report import format_report
from .runner import run
from .shapes import SUITE

__all__ = ["main_args"]


def main_args(backend: str | None, json_file: str | None, budget: float, threads: int | None,
              only: str | None, plot: str | None = None, rounds: int = 1) -> int:
    """Entry point of ``python -m polyconv bench``."""
    from polyconv.registry import registry

    if backend == "dask":  # no framework op to compare with: NumPy on the whole array, clusters of workers
        if registry.try_load("dask") is None:
            print("polyconv bench: backend 'dask' is not available here (pip install 'polyconv[dask]')",
                  file=sys.stderr)
            return 2
        from .cluster import format_cluster, run_cluster

        cluster_report = run_cluster()
        print(format_cluster(cluster_report))
        if json_file:
            with open(json_file, "w") as f:
                json.dump(cluster_report, f, indent=2)
        return 0
    available = [b for b in ("numpy", "torch", "jax", "mlx", "cupy") if registry.try_load(b) is not None]
    if backend is not None:
        if backend not in available:
            print(f"polyconv bench: backend {backend!r} is not available here "
                  f"(available: {', '.join(available)})", file=sys.stderr)
            return 2
        backends = [backend]
    else:
        backends = available
    if rounds < 1:
        print(f"polyconv bench: --rounds must be at least 1, got {rounds}", file=sys.stderr)
        return 2
    shapes = tuple(s for s in SUITE if only is None or only.lower() in s.name.lower())
    report = run(backends, shapes, budget, threads, rounds)
    from .overhead import format_overhead, run_overhead  # not at import: it runs as python -m too

    report["overhead"] = run_overhead(backends, min(budget, 2.0))
    if "jax" in backends:
        from .gradients import format_gradients, run_gradients

        report["gradients"] = run_gradients(shapes, budget)
    print(format_report(report))
    print(format_overhead(report["overhead"]))
    if report.get("gradients"):
        print(format_gradients(report["gradients"]))
    if json_file:
        with open(json_file, "w") as f:
            json.dump(report, f, indent=2)
    if plot:
        from .plot import plot_report

        plot_report(report, plot)
    return 0

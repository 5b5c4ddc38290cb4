"""The report as text: one row per timed pair, then the median ratio per backend and
native op; "of matmul" is each side's GFLOP/s over its own framework's matrix-product rate."""

from __future__ import annotations

import statistics
from typing import Any

__all__ = ["format_report"]


def _fmt_time(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} us"


def _fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f} MiB"


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table, with the median ratio per backend and native op."""
    rates = report.get("matmul_gflops_by_framework") or {"numpy": report["matmul_gflops"]}
    lines = ["each side timed alone, in a process of its own; float32 matrix-product rates (GFLOP/s, "
             "measured in the same run, each in its side's process): "
             + ", ".join(f"{k} {v:.1f}" for k, v in rates.items())
             + f" (PyTorch threads: {report['threads'] or 'default'})"
             + (f"; each side's fastest of {report['rounds']} rounds" if report.get("rounds", 1) > 1 else "")]
    header = ["backend", "shape", "vs", "polyconv", "native", "ratio", "GFLOP/s", "of matmul", "peak extra"]
    rows = [[r["backend"], r["shape"], r["native"], _fmt_time(r["polyconv_s"]), _fmt_time(r["native_s"]),
             f"{r['ratio']:.3f}", f"{r['polyconv_gflops']:.1f} / {r['native_gflops']:.1f}",
             f"{r['polyconv_of_matmul']:.2f} / {r['native_of_matmul']:.2f}",
             _fmt_bytes(r.get("polyconv_peak_extra_bytes"))] for r in report["results"]]
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    groups: dict[tuple[str, str], list[float]] = {}
    for r in report["results"]:
        groups.setdefault((r["backend"], r["native"]), []).append(r["ratio"])
    for (backend, native), ratios in groups.items():
        lines.append(f"median ratio {backend} / {native}: {statistics.median(ratios):.3f} "
                     f"(max {max(ratios):.3f}, {len(ratios)} shapes)")
    return "\n".join(lines)

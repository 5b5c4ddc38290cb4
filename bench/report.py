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


def _of_peak(r: dict[str, Any], side: str) -> str:
    """A side's fraction of the peak, or the flag that replaces a figure above it."""
    if r.get(f"{side}_of_peak") is None:
        return "-"
    if r.get(f"{side}_above_peak"):
        return "ERROR>peak"
    if r.get(f"{side}_within_spread"):
        return f"{r[f'{side}_of_peak']:.2f}~"
    return f"{r[f'{side}_of_peak']:.2f}" + ("*" if r[f"{side}_of_peak"] > 1.0 else "")


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table, with the median ratio per backend and native op.

    Each side's GFLOP/s is also given as a fraction of the machine's float32 peak
    measured in the same run (the best matrix product of any side's framework); a
    figure above the peak on a direct computation is a measurement error and is
    printed as ``ERROR>peak`` (with the rows listed at the end), never as a result,
    unless it is within the spread of the peak's measurement between the run's
    processes (marked ``~``);
    FFT's effective rate may exceed it (marked ``*``: it does fewer operations)."""
    rates = report.get("matmul_gflops_by_framework") or {"numpy": report["matmul_gflops"]}
    peak = report.get("peak_gflops")
    lines = ["sides of two frameworks each timed alone, in a process of its own; polyconv and its own framework's "
             "op interleaved in one process; float32 matrix-product rates (GFLOP/s, "
             "measured in the same run, each in its side's process): "
             + ", ".join(f"{k} {v:.1f}" for k, v in rates.items())
             + f" (PyTorch threads: {report['threads'] or 'default'})"
             + (f"; each side's fastest of {report['rounds']} rounds" if report.get("rounds", 1) > 1 else "")]
    if peak:
        lines.append(f"the machine's float32 peak as measured in this run: {peak:.1f} GFLOP/s, "
                     f"{100 * report.get('peak_spread', 0.0):.1f}% between its processes (the best "
                     "1024x1024 matrix product of any side's framework, and of NumPy in every CPU side's process); "
                     "'of peak' is each side's GFLOP/s over it")
    header = ["backend", "shape", "vs", "polyconv", "native", "ratio", "GFLOP/s", "of matmul", "of peak", "peak extra"]
    rows = [[r["backend"], r["shape"], r["native"], _fmt_time(r["polyconv_s"]), _fmt_time(r["native_s"]),
             f"{r['ratio']:.3f}", f"{r['polyconv_gflops']:.1f} / {r['native_gflops']:.1f}",
             f"{r['polyconv_of_matmul']:.2f} / {r['native_of_matmul']:.2f}",
             f"{_of_peak(r, 'polyconv')} / {_of_peak(r, 'native')}",
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
    shares = {r["shape"]: r["polyconv_in_gemm"] for r in report["results"] if r.get("polyconv_in_gemm") is not None}
    if shares:
        lines.append("numpy backend, time in GEMM (its matrix products timed alone on operands of the same sizes, "
                     "over the call's time; 1.0 is NumPy's own rate for those products): "
                     + ", ".join(f"{name} {share:.2f}" for name, share in shares.items()))
    errors = report.get("above_peak") or []
    for r in errors:
        sides = [s for s in ("polyconv", "native") if r.get(f"{s}_above_peak")]
        lines.append(f"MEASUREMENT ERROR: {r['backend']} {r['shape']} vs {r['native']}: "
                     + ", ".join(f"{s} at {r[f'{s}_of_peak']:.2f} of the peak" for s in sides)
                     + " (a direct computation cannot beat the machine's peak: the run is not a result; rerun it "
                     "with --rounds, on a quiet machine)")
    if any(r.get(f"{s}_within_spread") for r in report["results"] for s in ("polyconv", "native")):
        lines.append("~ above the run's best matrix product, by less than the spread of that product's rate "
                     "between the run's processes: within the peak's own uncertainty, not by itself an error")
    if any(r.get(f"{s}_of_peak", 0) > 1.0 and not r.get(f"{s}_above_peak") and not r.get(f"{s}_within_spread")
           for r in report["results"] for s in ("polyconv", "native")):
        lines.append("* above the peak by FFT: its effective GFLOP/s counts the direct convolution's operations")
    return "\n".join(lines)

"""``python -m polyconv bench --plot FILE.png``: the ratios of a report as a bar chart.

One group of horizontal bars per shape, one bar per (backend, native side)
pair: polyconv's time over the framework's own, on a logarithmic axis with
the line of equal speed at 1 (left of it polyconv is faster).  Needs
matplotlib (``pip install matplotlib``; the ``dev`` extra has it); the
figure is drawn with the non-interactive Agg backend.
"""

from __future__ import annotations

from typing import Any

__all__ = ["plot_report"]


def plot_report(report: dict[str, Any], path: str) -> None:
    """Write the report's ratios (polyconv / native, per shape and pair) to ``path`` (PNG)."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("polyconv bench --plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    shapes = list(dict.fromkeys(r["shape"] for r in results))
    series = list(dict.fromkeys((r["backend"], r["native"]) for r in results))
    ratio = {(r["shape"], r["backend"], r["native"]): r["ratio"] for r in results}
    height = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.45 * len(shapes) * max(1, len(series) / 2)))
    for j, (backend, native) in enumerate(series):
        ys = [i + (j - (len(series) - 1) / 2) * height for i in range(len(shapes))]
        xs = [ratio.get((s, backend, native), float("nan")) for s in shapes]
        ax.barh(ys, xs, height=height, label=f"{backend} / {native}")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(shapes)), shapes)
    ax.invert_yaxis()
    ax.set_xlabel("polyconv time / the framework's own op's time (below 1: polyconv is faster)",
                  fontsize="small")
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.08 - 0.35 / len(shapes)),
              ncol=2, frameon=False)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

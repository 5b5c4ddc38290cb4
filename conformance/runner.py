"""``python -m polyconv conformance``: the suite without pytest, as a matrix.

Runs every item of :mod:`.suite` on each backend asked for (all registered
ones by default), with a progress bar, then prints the backend-by-feature
matrix and the failures (each with its reproducer), and writes the JSON and
Markdown reports when asked.  The exit status is 1 when anything failed.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from polyconv.table import DEFAULT_WIDTH

from .report import Tally, as_json, markdown, terminal, tolerance_table

__all__ = ["run", "main_args"]


def _progress(backend: str) -> Any:
    tty = sys.stderr.isatty()

    def show(i: int, total: int, item: Any) -> None:
        if tty and (i % 25 == 0 or i == total - 1):
            width = 30
            done = width * (i + 1) // max(total, 1)
            sys.stderr.write(f"\r{backend:10s} [{'#' * done}{'.' * (width - done)}] {i + 1}/{total} "
                             f"{str(item)[:60]:60s}")
            sys.stderr.flush()

    return show


def run(backends: list[str] | None = None, thorough: bool = False, device: str | None = None,
        features: list[str] | None = None) -> Tally:
    """Run the suite on ``backends`` (default: every registered one), only
    ``features`` if given, and tally it."""
    from polyconv.registry import registry

    from .plugin import disable_xla_algsimp
    from .suite import Suite, load

    disable_xla_algsimp()
    names = backends or sorted(registry.records())
    tally = Tally()
    for name in names:
        be, why = load(name)
        if be is None:
            tally.notes[name] = f"unavailable: {why}"
            continue
        suite = Suite(be, thorough, device, features)
        start = time.perf_counter()
        for item, outcome in suite.run(_progress(name)):
            tally.add(name, item.feature, outcome.status, item.id, outcome.report(), case=item.case)
        tally.seconds[name] = time.perf_counter() - start
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        print(f"{name}: {len(suite.items)} items in {tally.seconds[name]:.0f} s", file=sys.stderr)
    return tally


def main_args(backend: str | None, json_file: str | None, markdown_file: str | None, thorough: bool,
              device: str | None, command: str, features: str | None = None, *, wide: bool = False) -> int:
    """The CLI: run, print the matrix and failures, write the reports."""
    from .suite import FEATURES

    names = [n.strip() for n in backend.split(",")] if backend else None
    only = [f.strip() for f in features.split(",")] if features else None
    unknown = sorted(set(only or ()) - set(FEATURES))
    if unknown:
        print(f"--features: unknown feature(s) {', '.join(unknown)}; the features are {', '.join(FEATURES)}",
              file=sys.stderr)
        return 2
    tally = run(names, thorough, device, only)
    print(terminal(tally, None if wide else DEFAULT_WIDTH))
    for f in tally.failures[:20]:
        print(f"\nFAIL {f['backend']} {f['item']}:\n{f['detail']}")
    if len(tally.failures) > 20:
        print(f"\n... and {len(tally.failures) - 20} more failures (all in the JSON report)")
    if json_file:
        with open(json_file, "w") as fh:
            json.dump(as_json(tally), fh, indent=2)
    if markdown_file:
        doc = markdown(tally, "Conformance matrix", command)
        doc += ("\nWhat each column checks, how to run the suite on your own backend, and what the "
                "outcomes mean: [the conformance guide](conformance-guide.md).\n\n"
                "## Tolerances\n\nRelative bound times the magnitude (the convolution of the absolute "
                "values) for an element summing 576 products (3x3 window, 64 channels); the formula and "
                "its reasons are in the guide.\n\n" + tolerance_table() + "\n")
        with open(markdown_file, "w") as fh:
            fh.write(doc)
    missing = [b for b, note in tally.notes.items() if names and b in names and note.startswith("unavailable")]
    return 1 if tally.failures or missing else 0

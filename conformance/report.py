"""The backend-by-feature matrix of a conformance run: terminal, Markdown, JSON.

A :class:`Tally` counts outcomes per backend and feature (and keeps the
failures' details); :func:`terminal`, :func:`markdown` and :func:`as_json`
render it.

Examples
--------
>>> t = Tally()
>>> t.add("numpy", "conv_general_dilated", "pass")
>>> t.add("toy", "conv_general_dilated", "unsupported")
>>> print(terminal(t))  # doctest: +NORMALIZE_WHITESPACE
backend  conv_general_dilated
-------  --------------------
numpy    1 pass
toy      1 unsupported
"""

from __future__ import annotations

import dataclasses
import platform
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polyconv.table import notes, render

from .suite import FEATURES

__all__ = ["Tally", "terminal", "markdown", "as_json", "case_fields", "tolerance_table"]

_ORDER = ("pass", "fail", "unsupported", "unavailable")


@dataclass
class Tally:
    """Outcome counts per ``(backend, feature)``, the failures, and per-backend notes."""

    counts: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # backend -> why it was not run, or its run time
    seconds: dict[str, float] = field(default_factory=dict)

    items: list[dict[str, Any]] = field(default_factory=list)  # every item, when added with its case

    def add(self, backend: str, feature: str, status: str, item: str = "", detail: str = "",
            case: Any = None, fields: dict[str, Any] | None = None) -> None:
        """Count one outcome; a failure keeps its detail, and an item given with its ``case``
        (or the case's ``fields``, already :func:`case_fields`) is also listed, whatever its outcome."""
        self.counts.setdefault((backend, feature), Counter())[status] += 1
        if status == "fail":
            self.failures.append({"backend": backend, "feature": feature, "item": item, "detail": detail})
        if case is not None and fields is None:
            fields = case_fields(case)
        if fields is not None:
            self.items.append({"backend": backend, "feature": feature, "item": item, "status": status,
                               "detail": detail if status != "pass" else "", "case": fields})

    def backends(self) -> list[str]:
        seen = dict.fromkeys([b for b, _ in self.counts] + list(self.notes))
        return list(seen)

    def features(self) -> list[str]:
        used = {f for _, f in self.counts}
        return [f for f in FEATURES if f in used] + sorted(used - set(FEATURES))

    def total(self, status: str) -> int:
        return sum(c[status] for c in self.counts.values())


def _cell(c: Counter[str] | None) -> str:
    if not c:
        return "-"
    return ", ".join(f"{c[s]} {s}" for s in _ORDER if c[s])


def _rows(t: Tally, cell: Callable[[Counter[str] | None], str] = _cell) -> list[list[str]]:
    rows = []
    for b in t.backends():
        if b in t.notes and not any(k[0] == b for k in t.counts):
            rows.append([b] + [t.notes[b]] + [""] * (len(t.features()) - 1))
            continue
        rows.append([b] + [cell(t.counts.get((b, f))) for f in t.features()])
    return rows


def _short_cell(c: Counter[str] | None) -> str:
    """``1382 u131 F2``: passed, unsupported, failed (see :data:`_SHORT_LEGEND`)."""
    if not c:
        return "-"
    parts = [str(c["pass"])] if c["pass"] else []
    parts += [f"{p}{c[s]}" for s, p in (("unsupported", "u"), ("fail", "F"), ("unavailable", "n/a ")) if c[s]]
    return " ".join(parts)


_SHORT_HEADERS = {"conv_general_dilated": "conv", "conv_transpose": "transpose"}
_SHORT_LEGEND = "N passed, uN unsupported (the promised error was raised), FN failed, n/a not run (why: below)"


def terminal(t: Tally, width: int | None = None) -> str:
    """The matrix as aligned plain text; with ``width``, made to fit it.

    When the whole matrix is wider than ``width``, the cells are written
    short (``1382 u131 F2`` for 1382 passed, 131 unsupported and 2
    failed, with a legend), backends that were not run show ``n/a`` and
    their reason below the matrix, and what still does not fit is cut.
    """
    header = ["backend", *t.features()]
    whole = render(header, _rows(t))
    if width is None or max(len(line) for line in whole.splitlines()) <= width:
        return whole
    rows = _rows(t, _short_cell)
    skipped = [(r[0], r[1]) for r in rows if r[0] in t.notes and not any(k[0] == r[0] for k in t.counts)]
    for r in rows:
        if (r[0], r[1]) in skipped:
            r[1] = "n/a"
    text = render([_SHORT_HEADERS.get(h, h) for h in header], rows, width)
    text += "\n" + _SHORT_LEGEND[:width]
    if skipped:
        text += "\n" + notes(skipped, width)
    return text


def markdown(t: Tally, title: str = "Conformance matrix", command: str = "") -> str:
    """The matrix as a Markdown document (with the failures, if any)."""
    features = t.features()
    out = [f"# {title}", ""]
    if command:
        out += ["Generated by", "", "```", command, "```", ""]
    out += [f"Python {platform.python_version()}, {platform.system()} {platform.machine()}. "
            f"Totals: {t.total('pass')} pass, {t.total('fail')} fail, {t.total('unsupported')} unsupported.", ""]
    out += ["| backend | " + " | ".join(f"`{f}`" for f in features) + " |",
            "|---|" + "---|" * len(features)]
    out += ["| " + " | ".join(r) + " |" for r in _rows(t)]
    if t.seconds:
        out += ["", "Time per backend: " + ", ".join(f"{b} {s:.0f} s" for b, s in t.seconds.items()) + "."]
    if t.failures:
        out += ["", "## Failures", ""]
        for f in t.failures:
            out += [f"- {f['backend']} `{f['item']}`: {f['detail'].splitlines()[0] if f['detail'] else ''}"]
    return "\n".join(out) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    return str(value)


def case_fields(case: Any) -> dict[str, Any]:
    """A case as plain JSON data: its kind (the class name) and its fields (tuples as
    lists); a case that is not a dataclass (a Hypothesis property's op) as its string.

    Examples
    --------
    >>> from polyconv.conformance import cases
    >>> case_fields(cases.ConvCase("tiny", (1, 1, 4), (1, 1, 2), (1,), "VALID"))["lhs_shape"]
    [1, 1, 4]
    """
    if not dataclasses.is_dataclass(case):
        return {"kind": type(case).__name__, "value": _plain(case)}
    return {"kind": type(case).__name__,
            **{f.name: _plain(getattr(case, f.name)) for f in dataclasses.fields(case) if f.name != "tags"}}


def as_json(t: Tally) -> dict[str, Any]:
    """Plain data: counts per backend and feature, failures, notes, and every item
    (its outcome and its case's fields) where the run listed them."""
    return {
        "matrix": {b: {f: dict(c) for (bb, f), c in t.counts.items() if bb == b} for b in t.backends()},
        "failures": t.failures,
        "items": t.items,
        "notes": t.notes,
        "seconds": t.seconds,
        "totals": {s: t.total(s) for s in _ORDER[:3]},
    }


def tolerance_table(products: int = 576) -> str:
    """Markdown: the relative bound per dtype and precision for an element
    summing ``products`` products (576: a 3x3 window over 64 channels), for
    exact-precision backends and for backends declaring ``reduced_precision``."""
    from . import tolerances

    rows = ["| operands -> result | precision | bound (exact backends) | bound (reduced_precision backends) |",
            "|---|---|---|---|"]
    pairs = [("float16", "float16"), ("bfloat16", "bfloat16"), ("float32", "float32"), ("float64", "float64"),
             ("complex64", "complex64"), ("complex128", "complex128"), ("float16", "float32"),
             ("int8", "float32"), ("int32", "int32")]
    for dtype, out in pairs:
        for precision in (None, ("high", "high"), ("highest", "highest")):
            if precision is not None and dtype not in ("float32", "complex64"):
                continue
            name = "default" if precision is None else precision[0]
            if out.startswith(("int", "uint")):
                rows.append(f"| {dtype} -> {out} | any | exact | exact |")
                continue
            exact = tolerances.tolerance_for(products, dtype, out, precision, False)
            reduced = tolerances.tolerance_for(products, dtype, out, precision, True)
            rows.append(f"| {dtype} -> {out} | {name} | {exact:.2e} | {reduced:.2e} |")
    return "\n".join(rows)

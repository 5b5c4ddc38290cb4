"""Plain-text tables for the command line, fitted to a terminal's width.

``python -m polyconv info`` and the conformance matrix print tables; by
default they must fit a terminal of :data:`DEFAULT_WIDTH` columns, and
``--wide`` prints them whole.  :func:`render` aligns the columns and, given
a width, cuts the widest cells (ending them in ``...``) until the table
fits; the commands first choose compact cells, so that cutting is the last
resort.

Examples
--------
>>> print(render(["name", "note"], [["numpy", "ok"], ["cupy", "CuPy is not installed here"]], width=20))
name   note
-----  -------------
numpy  ok
cupy   CuPy is no...
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

__all__ = ["DEFAULT_WIDTH", "render", "notes"]

#: The terminal width the commands fit by default.
DEFAULT_WIDTH = 100

_GAP = "  "
_CUT = "..."


def render(header: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None) -> str:
    """``header`` and ``rows`` as aligned columns under a rule of dashes.

    With ``width``, the widest column is narrowed, one character at a time,
    until every line fits (a column keeps at least its header and six
    characters); cut cells end in ``...``.  Trailing blanks are dropped.
    """
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    if width is not None:
        floors = [max(len(h), len(_CUT) + 3) for h in header]
        while sum(widths) + len(_GAP) * (len(widths) - 1) > width:
            shrinkable = [i for i, w in enumerate(widths) if w > floors[i]]
            if not shrinkable:
                break
            widest = max(shrinkable, key=lambda i: widths[i])
            widths[widest] -= 1

    def line(cells: Sequence[str]) -> str:
        return _GAP.join(_fit(str(c), w).ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header), _GAP.join("-" * w for w in widths), *(line(r) for r in rows)])


def notes(items: Sequence[tuple[str, str]], width: int | None = None) -> str:
    """``name: text`` lines, each wrapped to ``width`` (hanging indent) when given.

    Examples
    --------
    >>> print(notes([("cupy", "CuPy is not installed (pip install 'polyconv[cupy]')")], width=30))
    cupy: CuPy is not installed
      (pip install
      'polyconv[cupy]')
    """
    out = []
    for name, text in items:
        line = f"{name}: {text}"
        out.append(textwrap.fill(line, width, subsequent_indent="  ") if width else line)
    return "\n".join(out)


def _fit(cell: str, width: int) -> str:
    return cell if len(cell) <= width else cell[: width - len(_CUT)] + _CUT

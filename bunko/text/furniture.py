"""Running headers and footers: the lines a PDF repeats at the top or bottom of its pages.

A browser's "print to PDF" stamps the date, the title, the file's URL and "12/153" on every page;
a typeset manual repeats its title and "27 / 63". Indexed, they make every page match the title's
words and the URL's path, and a footer row printed under a table reads as one more row of it. A
line is furniture when it is the first or the last line of at least 40 % of a document's
pages (and of 3 or more) once its digits are ignored; it is removed from those positions only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from bunko.domain import PageText

EDGE_LINES = 1
MIN_SHARE = 0.4
MIN_PAGES = 3

_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"[\s|]+")


def line_key(line: str) -> str:
    """What two instances of one running header have in common: digits and spacing dropped."""
    return _DIGITS.sub("#", _SPACE.sub("", line)).lower()


def _edges(lines: list[str]) -> list[int]:
    idx = [i for i, ln in enumerate(lines) if ln.strip() and not set(ln.strip()) <= set("|-: ")]
    return sorted(set(idx[:EDGE_LINES] + idx[-EDGE_LINES:]))


def furniture_keys(pages: Sequence[PageText]) -> set[str]:
    counts: Counter[str] = Counter()
    for p in pages:
        lines = p.markdown.split("\n")
        counts.update({line_key(lines[i]) for i in _edges(lines)})
    need = max(MIN_PAGES, MIN_SHARE * len(pages))
    return {k for k, n in counts.items() if n >= need and k not in ("", "#")}


def strip_furniture(pages: Sequence[PageText]) -> list[PageText]:
    """``pages`` with their running headers and footers removed (other lines untouched)."""
    keys = furniture_keys(pages)
    if not keys:
        return list(pages)
    out = []
    for p in pages:
        lines = p.markdown.split("\n")
        drop = {i for i in _edges(lines) if line_key(lines[i]) in keys}
        if not drop:
            out.append(p)
            continue
        kept = "\n".join(ln for i, ln in enumerate(lines) if i not in drop)
        # A footer row taken from under a table may leave the table with its header rule only.
        kept = re.sub(r"\n{3,}", "\n\n", kept).strip()
        out.append(replace(p, markdown=kept))
    return out

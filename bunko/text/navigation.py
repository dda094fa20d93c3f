"""Navigation text: table-of-contents, index and list-of-tables lines and pages.

A TOC line names a section and the page it is on (``3.1 debian/rules ファイル .......... 23``,
``付録 A 索引 112``); a page made mostly of such lines points at the body pages that answer a
question but answers nothing itself, yet it shares every heading's words with the question. Search
ranks such passages below the body (``bunko.retrieve.search``) and extractive answers never quote
their lines (``bunko.generate.extractive``).
"""

from __future__ import annotations

import re

# Dot (or ellipsis / middle-dot / dash) leaders then a page number: "見出し ……… 12".
_LEADER = re.compile(r"(?:[.．・·…‥]\s?){3,}\s*[0-9０-９ivxlcIVXLC]{1,5}\s*$")
# A numbered heading ending in a page number: "3.1 debian/rules ファイル 23", "第2章 概要 15".
_NUMBERED = re.compile(
    r"^\s*(?:\d+(?:\.\d+)*\.?|第[0-9０-９一二三四五六七八九十]+[章節部]|[A-Z]\.|付録\s*[A-Z0-9]+)\s+\S.*?\s+\d{1,4}\s*$"
)
# A heading, a run of spaces, a page number: the page-number column of a TOC or an index.
_PAGE_COLUMN = re.compile(r"\S.*\S\s{2,}\d{1,4}\s*$")

_MIN_LINES = 4
_SHARE = 0.5


def is_toc_line(line: str) -> bool:
    """True for a line that points at a page: leaders, or a numbered heading and a page number."""
    line = line.strip()
    if not line or len(line) > 200:
        return False
    return bool(_LEADER.search(line) or _NUMBERED.match(line) or _PAGE_COLUMN.match(line))


def is_navigation(text: str) -> bool:
    """True for a passage that is mostly TOC / index lines (at least 4 lines, half or more)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < _MIN_LINES:
        return False
    return sum(is_toc_line(ln) for ln in lines) / len(lines) >= _SHARE

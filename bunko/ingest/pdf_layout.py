"""How a page's text layer becomes Markdown: pdfium's characters grouped into runs, runs into
lines, lines into paragraphs and tables, with a block (kind, text, box) for each.

Runs inside the sandbox child (``bunko.ingest.pdf_child``), on the text page it holds open.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from bunko.text.normalize import join_runs, normalize_text

# A page's text layer as it crosses the sandbox's socket, in plain tuples: the child never builds
# OcrBlock, and the caller (bunko.ingest.pdf) turns them into a LayerPage.
# (page_no, width_pt, height_pt, raw_text, markdown, [(kind, text, x0, y0, x1, y1)])
WireBlock = tuple[str, str, float, float, float, float]
WireLayer = tuple[int, float, float, str, str, list[WireBlock]]

@dataclass
class _Item:
    """A run of characters on one line (see text_items), in PDF space (y up)."""

    text: str
    left: float
    bottom: float
    right: float
    top: float
    size: float


# A gap wider than this many font sizes between two characters of a line separates two cells
# (table columns, label and value); _group_lines uses the same width to keep them apart.
_CELL_GAP = 1.2
# A gap between two Latin characters wider than this many font sizes is a word space, even when the
# PDF has no space character there (some producers position every word on its own).
_WORD_GAP = 0.25
# A space pdfium generated between Japanese characters is kept when the gap is at least this wide
# (Chromium prints "第2章 画面" with a gap of 0.17 em and no space character; set solid, Japanese
# glyph boxes touch).
_VISIBLE_GAP = 0.1


def text_items(textpage: pdfium.PdfTextPage) -> list[_Item]:
    """The page's text as runs of characters on one line, with their box and font size.

    Built from pdfium's character stream, not from its text rectangles: Chromium's "print to PDF"
    (and other Skia-based producers) place glyphs one by one, and pdfium then reports a rectangle
    per glyph with overlapping neighbours, so reading rectangle by rectangle put a space between
    every Latin letter and repeated characters ("F 6", "FA FA Q"). A run ends at a line break,
    when the next character is on another line, or after a gap of a cell's width."""
    tp = textpage.raw
    n = int(pdfium_c.FPDFText_CountChars(tp))
    rect = pdfium_c.FS_RECTF()
    items: list[_Item] = []
    text: list[str] = []
    left = bottom = right = top = size = 0.0
    space: str | None = None  # a space since the last character: "real", "gap" (pdfium's) or none

    def flush() -> None:
        if text and "".join(text).strip():
            items.append(_Item("".join(text).strip(), left, bottom, right, top, size))
        text.clear()

    i = 0
    while i < n:
        code = int(pdfium_c.FPDFText_GetUnicode(tp, i))
        i += 1
        if 0xD800 <= code < 0xDC00 and i < n:  # a surrogate pair: one character, two entries
            low = int(pdfium_c.FPDFText_GetUnicode(tp, i))
            if 0xDC00 <= low < 0xE000:
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                i += 1
        ch = chr(code) if 0 < code < 0x110000 else ""
        if ch in ("\r", "\n"):
            flush()
            space = None
            continue
        if not ch or ch.isspace() or ch == "\ufffe":
            # A space the document has is kept; one pdfium generated from a gap only between Latin
            # words or where the gap is a visible one (kana set close together are one word).
            if ch and ch != "\ufffe":
                space = "real" if not pdfium_c.FPDFText_IsGenerated(tp, i - 1) else (space or "gap")
            continue
        if not pdfium_c.FPDFText_GetLooseCharBox(tp, i - 1, ctypes.byref(rect)):
            continue
        c_left, c_right = min(rect.left, rect.right), max(rect.left, rect.right)
        c_bottom, c_top = min(rect.bottom, rect.top), max(rect.bottom, rect.top)
        c_size = float(pdfium_c.FPDFText_GetFontSize(tp, i - 1)) or (c_top - c_bottom)
        if text:
            centre = (c_bottom + c_top) / 2
            gap = c_left - right
            unit = max(size, c_size, 1.0)
            if bottom <= centre <= top and -unit < gap < _CELL_GAP * unit:
                prev = text[-1]
                latin = not (_is_cjk(prev) or _is_cjk(ch))
                if (space == "real" or (space and gap > _VISIBLE_GAP * unit)
                        or (latin and (space or gap > _WORD_GAP * unit))):
                    text.append(" ")
                text.append(ch)
                right, top, bottom = max(right, c_right), max(top, c_top), min(bottom, c_bottom)
                size = max(size, c_size)
                space = None
                continue
            flush()
        text.append(ch)
        left, bottom, right, top, size = c_left, c_bottom, c_right, c_top, c_size
        space = None
    flush()
    return items


def _is_cjk(ch: str) -> bool:
    return ord(ch) >= 0x2E80


@dataclass
class _Line:
    cells: list[_Item]
    left: float = 0.0
    right: float = 0.0
    top: float = 0.0
    bottom: float = 0.0
    size: float = 0.0
    chars: int = 0

    def finish(self) -> _Line:
        """Fix the line's extent once its cells are final."""
        self.left = min(c.left for c in self.cells)
        self.right = max(c.right for c in self.cells)
        self.top = max(c.top for c in self.cells)
        self.bottom = min(c.bottom for c in self.cells)
        self.size = max(c.size for c in self.cells)
        self.chars = sum(len(c.text) for c in self.cells)
        return self


def _group_lines(items: list[_Item]) -> list[_Line]:
    rows: list[list[_Item]] = []
    row_bottom = row_top = 0.0
    for item in sorted(items, key=lambda it: (-it.top, it.left)):
        centre = (item.top + item.bottom) / 2
        if rows and row_bottom <= centre <= row_top:
            rows[-1].append(item)
        else:
            rows.append([item])
            row_bottom, row_top = item.bottom, item.top
    lines = []
    for row in rows:
        row.sort(key=lambda it: it.left)
        # Runs closer than a character's width belong to one cell; wider gaps separate columns.
        merged: list[_Item] = []
        for item in row:
            if merged and item.left - merged[-1].right < 1.2 * max(item.size, merged[-1].size):
                last = merged[-1]
                merged[-1] = _Item(
                    join_runs(last.text, item.text), last.left, min(last.bottom, item.bottom),
                    item.right, max(last.top, item.top), max(last.size, item.size),
                )
            else:
                merged.append(item)
        lines.append(_Line(merged).finish())
    return lines


def _weighted_median(pairs: list[tuple[float, int]]) -> float:
    pairs = sorted(pairs)
    half = sum(w for _, w in pairs) / 2
    acc = 0
    for value, weight in pairs:
        acc += weight
        if acc >= half:
            return value
    return pairs[-1][0]



def _cell(text: str) -> str:
    return normalize_text(text).replace("|", "\\|").replace("\n", " ")


def layout(items: list[_Item], page_height: float) -> tuple[str, list[WireBlock]]:
    """Markdown for a page: ``#`` headings by font size, tables from aligned columns, wrapped lines
    of one paragraph joined (so a sentence is never cut by a line break)."""
    lines = _group_lines(items)
    if not lines:
        return "", []
    body = _weighted_median([(line.size, max(1, line.chars)) for line in lines])
    prose_right = max((ln.right for ln in lines if len(ln.cells) == 1), default=max(ln.right for ln in lines))

    parts: list[tuple[str, str, list[_Line]]] = []  # (kind, markdown, lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        ncells = len(line.cells)
        if ncells >= 2:
            j = i
            while j < len(lines) and len(lines[j].cells) == ncells:
                j += 1
            if j - i >= 2:
                rows = [[_cell(c.text) for c in ln.cells] for ln in lines[i:j]]
                md = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * ncells]
                md += ["| " + " | ".join(r) + " |" for r in rows[1:]]
                parts.append(("table", "\n".join(md), lines[i:j]))
                i = j
                continue
        text = " ".join(normalize_text(c.text) for c in line.cells)
        if line.size >= 1.2 * body and len(text) <= 80 and ncells == 1:
            level = "#" if line.size >= 1.6 * body else "##"
            parts.append(("title", f"{level} {text}", [line]))
            i += 1
            continue
        prev = parts[-1] if parts else None
        if prev is not None and prev[0] == "text":
            last = prev[2][-1]
            wrapped = last.right >= prose_right - 1.5 * last.size
            close = last.bottom - line.top <= 1.0 * max(last.size, line.size)
            if wrapped and close and abs(last.size - line.size) < 0.5:
                parts[-1] = ("text", join_runs(prev[1], text), [*prev[2], line])
                i += 1
                continue
        parts.append(("text", text, [line]))
        i += 1

    blocks = [
        (
            kind, md,
            min(ln.left for ln in group), page_height - max(ln.top for ln in group),
            max(ln.right for ln in group), page_height - min(ln.bottom for ln in group),
        )
        for kind, md, group in parts
    ]
    return "\n\n".join(md for _, md, _ in parts), blocks



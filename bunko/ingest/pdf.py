"""Page-level PDF access with pypdfium2.

The functions prefixed ``child_`` run inside the sandbox child (see ``bunko.ingest.sandbox``), which
holds the one open document in a module global; :class:`SandboxedPdf` is the caller's side.

Safety: pdfium runs JavaScript only through a form environment, and none is ever created here
(no ``init_forms``), so JavaScript and launch actions never run; attachments are never read.
Rasterisation has a pixel cap: a page too large to render at a useful resolution is refused.
"""

from __future__ import annotations

import ctypes
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from bunko.errors import CorruptPdf, EmptyPdf, EncryptedPdf, UnsafeDocument
from bunko.ingest.sandbox import Sandbox
from bunko.text.normalize import join_runs, normalize_text

if TYPE_CHECKING:
    # Not imported at run time: the sandbox child imports this module, and bunko.models.base brings
    # numpy, a tenth of a second of the child's start-up for nothing (the child sends plain tuples).
    from bunko.domain import OcrBlock

THUMBNAIL_SIZE = (200, 300)
# Pages whose text layers one request to the sandbox reads (each page still has its own deadline):
# the round trip and the caller's wake-up are paid once per batch, not once per page.
LAYER_BATCH_PAGES = 32
# Below this the OCR engines read nothing useful; a page that would need less to fit the pixel
# cap is absurd (hundreds of metres wide) rather than merely big.
MIN_RENDER_DPI = 100

# --- results handed back to the caller (plain, picklable) ------------------------------------


@dataclass(frozen=True)
class DocInfo:
    page_count: int
    title: str
    # pdfium's security handler revision; -1 when the file is not encrypted.
    security_revision: int


@dataclass
class LayerPage:
    """A page's text layer: raw text (for the quality check) and its Markdown layout."""

    page_no: int
    width_pt: float
    height_pt: float
    raw_text: str
    markdown: str
    blocks: list[OcrBlock] = field(default_factory=list)


@dataclass
class RenderedPage:
    image: Image.Image
    dpi: int  # may be lower than asked for, to stay under the pixel cap


# --- child side --------------------------------------------------------------------------------

_doc: pdfium.PdfDocument | None = None
_doc_path: str | None = None


def _open(path: str) -> pdfium.PdfDocument:
    global _doc, _doc_path
    if _doc is not None and _doc_path == path:
        return _doc
    if _doc is not None:
        _doc.close()
        _doc, _doc_path = None, None
    try:
        doc = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as e:
        code = getattr(e, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise EncryptedPdf(
                "the PDF is password-protected; Bunko cannot read encrypted files. Remove the password "
                "(e.g. `qpdf --decrypt --password=... in.pdf out.pdf`) and upload the copy."
            ) from None
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise EncryptedPdf(
                "the PDF uses an unsupported encryption scheme; save an unencrypted copy and upload that."
            ) from None
        if code == pdfium_c.FPDF_ERR_SUCCESS:
            # pdfium parsed the file but found no page it could load (an empty or cyclic page tree).
            raise EmptyPdf(
                "the PDF has no readable pages (its page tree is empty or broken); there is nothing to "
                "read. Re-export the document."
            ) from None
        raise CorruptPdf(
            f"the file starts like a PDF but cannot be parsed ({e}); it is truncated or damaged. "
            "Re-export or re-download it, or repair it (e.g. `qpdf in.pdf out.pdf`)."
        ) from None
    _doc, _doc_path = doc, path
    return doc


def child_open(path: str) -> DocInfo:
    doc = _open(path)
    revision = int(pdfium_c.FPDF_GetSecurityHandlerRevision(doc))
    try:
        title = str(doc.get_metadata_value("Title") or "")
    except Exception:  # a broken Info dictionary is not worth refusing the document for
        title = ""
    return DocInfo(page_count=len(doc), title=normalize_text(title), security_revision=revision)


# A page's text layer as it crosses the socket, in plain tuples: the child never builds OcrBlock
# (see the imports), and the caller turns them into a LayerPage.
# (page_no, width_pt, height_pt, raw_text, markdown, [(kind, text, x0, y0, x1, y1)])
_WireBlock = tuple[str, str, float, float, float, float]
_WireLayer = tuple[int, float, float, str, str, list[_WireBlock]]


def child_layer(page_no: int) -> _WireLayer:
    page = _page(page_no)
    try:
        width, height = page.get_size()
        textpage = page.get_textpage()
        try:
            items = _text_items(textpage)
        finally:
            textpage.close()
    finally:
        page.close()
    raw = "\n".join(item.text for item in items)
    markdown, blocks = _layout(items, height)
    return page_no, float(width), float(height), raw, markdown, blocks


def child_layers(first: int, last: int) -> Iterator[_WireLayer]:
    """Pages ``first..last`` one after the other, for :meth:`Sandbox.stream` (a deadline each)."""
    for page_no in range(first, last + 1):
        yield child_layer(page_no)


def child_render(page_no: int, dpi: int, max_pixels: int) -> RenderedPage:
    page = _page(page_no)
    try:
        width, height = page.get_size()
        dpi_used = fit_dpi(width, height, dpi, max_pixels)
        if dpi_used < MIN_RENDER_DPI:
            raise UnsafeDocument(
                f"page {page_no} is {width:.0f}×{height:.0f} pt; rendering it at even {MIN_RENDER_DPI} dpi "
                f"would need {_pixels(width, height, MIN_RENDER_DPI):,} pixels, more than the cap of "
                f"{max_pixels:,} (BUNKO_MAX_RENDER_PIXELS). The page size is absurd; the PDF may be hostile."
            )
        bitmap = page.render(scale=dpi_used / 72.0, grayscale=True)
        image = bitmap.to_pil()
        bitmap.close()
    finally:
        page.close()
    image.load()
    return RenderedPage(image=image, dpi=dpi_used)


def child_thumbnail(size: tuple[int, int] = THUMBNAIL_SIZE) -> bytes:
    page = _page(1)
    try:
        width, height = page.get_size()
        scale = min(size[0] / max(width, 1.0), size[1] / max(height, 1.0))
        bitmap = page.render(scale=scale)
        image = bitmap.to_pil().convert("RGB")
        bitmap.close()
    finally:
        page.close()
    image.thumbnail(size)  # rounding can leave it a pixel over
    canvas = Image.new("RGB", size, "white")
    canvas.paste(image, ((size[0] - image.width) // 2, (size[1] - image.height) // 2))
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _page(page_no: int) -> pdfium.PdfPage:
    doc = _require_doc()
    try:
        return doc[page_no - 1]
    except pdfium.PdfiumError:
        raise CorruptPdf(
            f"page {page_no} of the PDF cannot be loaded (a broken or cyclic page tree); re-export or "
            "repair the file (e.g. `qpdf in.pdf out.pdf`)."
        ) from None


def _require_doc() -> pdfium.PdfDocument:
    if _doc is None:
        raise RuntimeError("no document is open in this sandbox")
    return _doc


def _pixels(width_pt: float, height_pt: float, dpi: float) -> int:
    return math.ceil(width_pt / 72.0 * dpi) * math.ceil(height_pt / 72.0 * dpi)


def fit_dpi(width_pt: float, height_pt: float, dpi: int, max_pixels: int) -> int:
    """``dpi``, or the highest lower one at which the page stays within ``max_pixels``."""
    if _pixels(width_pt, height_pt, dpi) <= max_pixels:
        return dpi
    area_in2 = max(width_pt, 1.0) / 72.0 * max(height_pt, 1.0) / 72.0
    fitted = int(math.sqrt(max_pixels / area_in2))
    while fitted > 0 and _pixels(width_pt, height_pt, fitted) > max_pixels:
        fitted -= 1
    return fitted


# --- text layer layout -------------------------------------------------------------------------


@dataclass
class _Item:
    """A run of characters on one line (see _text_items), in PDF space (y up)."""

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


def _text_items(textpage: pdfium.PdfTextPage) -> list[_Item]:
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


def _layout(items: list[_Item], page_height: float) -> tuple[str, list[_WireBlock]]:
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


# --- caller side -------------------------------------------------------------------------------


class SandboxedPdf:
    """One PDF opened in its own sandbox child; all pdfium work for it happens there.

    >>> with SandboxedPdf(path, memory_mb=1536, timeout_s=60, max_pixels=40_000_000) as pdf:
    ...     layer = pdf.layer(1)
    """

    def __init__(self, path: Path, *, memory_mb: int, timeout_s: float, max_pixels: int) -> None:
        self.path = Path(path)
        self.max_pixels = max_pixels
        self._box = Sandbox(memory_mb=memory_mb, timeout_s=timeout_s)
        self._info: DocInfo | None = None
        self._opened_pid: int | None = None

    @classmethod
    def from_settings(cls, path: Path, settings: Any) -> SandboxedPdf:
        return cls(
            path,
            memory_mb=settings.sandbox_memory_mb,
            timeout_s=settings.sandbox_page_timeout_s,
            max_pixels=settings.max_render_pixels,
        )

    def __enter__(self) -> SandboxedPdf:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._box.close()

    @property
    def info(self) -> DocInfo:
        self._ensure_open()
        assert self._info is not None
        return self._info

    def _ensure_open(self) -> None:
        # The document lives in the child; a child that died or was replaced must reopen it.
        pid = self._box.ensure_started()
        if self._info is None or pid != self._opened_pid:
            self._info = self._box.call(child_open, str(self.path), what="opening the PDF")
            self._opened_pid = pid

    def layer(self, page_no: int) -> LayerPage:
        return self.layers(page_no, page_no)[0]

    def layers(self, first: int, last: int) -> list[LayerPage]:
        """The text layers of pages ``first..last`` in one request; each page has its own deadline."""
        self._ensure_open()
        wire = self._box.stream(
            child_layers, first, last, what=lambda i: f"reading the text of page {first + i}"
        )
        return [_layer_page(data) for data in wire]

    def render(self, page_no: int, dpi: int) -> RenderedPage:
        self._ensure_open()
        return self._box.call(
            child_render, page_no, dpi, self.max_pixels, what=f"rendering page {page_no} at {dpi} dpi"
        )

    def thumbnail(self) -> bytes:
        self._ensure_open()
        return self._box.call(child_thumbnail, THUMBNAIL_SIZE, what="rendering the thumbnail")


def _layer_page(data: _WireLayer) -> LayerPage:
    from bunko.models.base import OcrBlock  # here, not at the top: see the note at the imports

    page_no, width, height, raw, markdown, blocks = data
    return LayerPage(
        page_no, width, height, raw, markdown,
        [OcrBlock(text, (x0, y0, x1, y1), 1.0, kind) for kind, text, x0, y0, x1, y1 in blocks],
    )


def render_thumbnail(path: Path, settings: Any) -> bytes:
    """Page 1 as a 200×300 PNG (fitted, padded white), rendered in a sandbox."""
    with SandboxedPdf.from_settings(path, settings) as pdf:
        return pdf.thumbnail()

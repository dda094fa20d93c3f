"""The sandbox child's side of PDF access: the one open document (a module global of the child),
and what it reads from it — page count and title, text layers, rendered pages, the thumbnail.

Run only through :class:`bunko.ingest.pdf.SandboxedPdf` (or ``bunko.ingest.sandbox``), never in
the caller: pdfium parses hostile input here, under the child's memory cap and deadlines.

Safety: pdfium runs JavaScript only through a form environment, and none is ever created here
(no ``init_forms``), so JavaScript and launch actions never run; attachments are never read.
Rasterisation has a pixel cap: a page too large to render at a useful resolution is refused.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from bunko.errors import CorruptPdf, EmptyPdf, EncryptedPdf, UnsafeDocument
from bunko.ingest.pdf_layout import WireLayer, layout, text_items
from bunko.text.normalize import normalize_text

THUMBNAIL_SIZE = (200, 300)
# Below this the OCR engines read nothing useful; a page that would need less to fit the pixel
# cap is absurd (hundreds of metres wide) rather than merely big.
MIN_RENDER_DPI = 100


@dataclass(frozen=True)
class DocInfo:
    page_count: int
    title: str
    # pdfium's security handler revision; -1 when the file is not encrypted.
    security_revision: int


@dataclass
class RenderedPage:
    image: Image.Image
    dpi: int  # may be lower than asked for, to stay under the pixel cap


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




def child_layer(page_no: int) -> WireLayer:
    page = _page(page_no)
    try:
        width, height = page.get_size()
        textpage = page.get_textpage()
        try:
            items = text_items(textpage)
        finally:
            textpage.close()
    finally:
        page.close()
    raw = "\n".join(item.text for item in items)
    markdown, blocks = layout(items, height)
    return page_no, float(width), float(height), raw, markdown, blocks


def child_layers(first: int, last: int) -> Iterator[WireLayer]:
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



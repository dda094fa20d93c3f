"""A stored page as a reader sees it: its blocks with their boxes, and a picture of it.

The blocks come from the JSON the pipeline stored beside each page's Markdown (``Page.blocks_key``:
text-layer spans or OCR lines, ``bbox`` in PDF points, origin top left). The picture is rendered
on first request from the original PDF, in the sandbox like every other pdfium call, at
``PAGE_IMAGE_DPI`` (enough to read, small enough to send), and kept in the object store so the
next reader gets the stored bytes.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.errors import NotFound
from bunko.ingest.pdf import SandboxedPdf

if TYPE_CHECKING:
    from bunko.runtime import Runtime
    from bunko.store.db import Document, Page

log = logging.getLogger(__name__)

PAGE_IMAGE_DPI = 100


@dataclass(frozen=True)
class PageBlock:
    text: str
    bbox: tuple[float, float, float, float]  # PDF points, origin top left
    confidence: float
    kind: str


def page_image_prefix(document_id: str) -> str:
    return f"thumbnails/pages/{document_id}/"


def page_image_key(document_id: str, page_no: int) -> str:
    return f"{page_image_prefix(document_id)}{page_no}.png"


def page_blocks(rt: Runtime, page: Page) -> list[PageBlock]:
    """The page's stored blocks; none when the page has no blocks file or it cannot be read (the
    page's text is still there: the boxes are a help for the eye, not the answer)."""
    if not page.blocks_key:
        return []
    raw = rt.objects.get_or_none(page.blocks_key)
    if raw is None:
        return []
    try:
        return [_block(b) for b in json.loads(raw).get("blocks", [])]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("unreadable blocks file %s: %s", page.blocks_key, exc)
        return []


def _block(data: dict[str, Any]) -> PageBlock:
    x0, y0, x1, y1 = (float(v) for v in data["bbox"])
    return PageBlock(text=str(data["text"]), bbox=(x0, y0, x1, y1),
                     confidence=float(data.get("confidence", 1.0)), kind=str(data.get("kind", "text")))


def page_image_png(rt: Runtime, doc: Document, page_no: int) -> bytes:
    """Page ``page_no`` of ``doc`` as a PNG at ``PAGE_IMAGE_DPI``: stored, or rendered and stored."""
    if not 1 <= page_no <= doc.page_count:
        raise NotFound(f"page {page_no} of document {doc.id} does not exist "
                       f"(it has {doc.page_count} pages; status {doc.status})")
    key = page_image_key(doc.id, page_no)
    cached = rt.objects.get_or_none(key)
    if cached is not None:
        return cached
    if not doc.raw_key or not rt.objects.exists(doc.raw_key):
        raise NotFound("the original file of this document is not stored; its pages cannot be shown")
    with tempfile.TemporaryDirectory(prefix="bunko-page-") as tmp:
        pdf = Path(tmp) / "document.pdf"
        with pdf.open("wb") as fh:
            for part in rt.objects.iter_chunks(doc.raw_key):
                fh.write(part)
        with SandboxedPdf.from_settings(pdf, rt.settings) as sandboxed:
            rendered = sandboxed.render(page_no, PAGE_IMAGE_DPI)
    out = io.BytesIO()
    rendered.image.save(out, format="PNG")
    png = out.getvalue()
    rt.objects.put(key, png, content_type="image/png")
    return png

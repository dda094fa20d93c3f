"""A stored page as a reader sees it: its blocks with their boxes, and a picture of it.

The blocks come from the JSON the pipeline stored beside each page's Markdown (``Page.blocks_key``:
text-layer spans or OCR lines, ``bbox`` in PDF points, origin top left). The picture is rendered
on first request from the original PDF, in the sandbox like every other pdfium call, at
``PAGE_IMAGE_DPI`` (enough to read, small enough to send), and kept in the object store so the
next reader gets the stored bytes.

Each render starts a sandbox that may use up to ``sandbox_memory_mb``: a decompression bomb asked
for repeatedly started one per request, with no bound (8 requests, 4 at a time: 1.5 → 6.7 GB,
finding 15.5). So at most ``RENDER_CONCURRENCY`` renders run per process (a request waits
``RENDER_WAIT_S`` for a turn, then gets 503 "busy"), and a page that failed to render is
remembered for ``FAILED_RENDER_TTL_S``: asking again gets the same error without a sandbox.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bunko.errors import Busy, InvalidDocument, NotFound
from bunko.ingest.pdf import SandboxedPdf
from bunko.store import keys

if TYPE_CHECKING:
    from PIL import Image

    from bunko.runtime import Runtime
    from bunko.store.db import Document, Page

log = logging.getLogger(__name__)

PAGE_IMAGE_DPI = 100
RENDER_CONCURRENCY = 2
RENDER_WAIT_S = 5.0
FAILED_RENDER_TTL_S = 3600
_renders = threading.BoundedSemaphore(RENDER_CONCURRENCY)


@dataclass(frozen=True)
class PageBlock:
    text: str
    bbox: tuple[float, float, float, float]  # PDF points, origin top left
    confidence: float
    kind: str
    redacted: bool = False


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
                     confidence=float(data.get("confidence", 1.0)), kind=str(data.get("kind", "text")),
                     redacted=bool(data.get("redacted", False)))


def _redacted_boxes(rt: Runtime, document_id: str, page_no: int
                    ) -> tuple[list[tuple[float, float, float, float]], float]:
    """Boxes (PDF points) of the blocks a redact policy redacted (bunko.ingest.privacy), and the
    page's width in points."""
    from sqlalchemy import select

    from bunko.store.db import Page

    with rt.sessions() as s:
        page = s.scalar(select(Page).where(Page.document_id == document_id, Page.page_no == page_no))
        if page is None:
            return [], 0.0
        return [b.bbox for b in page_blocks(rt, page) if b.redacted], page.width_pt


def _black_out(image: Image.Image, redacted: tuple[list[tuple[float, float, float, float]], float]
               ) -> Image.Image:
    """The page picture with each box filled black: what the redacted text says must not be
    readable off the picture either."""
    boxes, width_pt = redacted
    if not boxes:
        return image
    from PIL import ImageDraw

    image = image.convert("RGB")
    draw = ImageDraw.Draw(image)
    # The render may have been shrunk to the sandbox's pixel cap: scale by what was drawn.
    scale = image.width / width_pt if width_pt > 0 else PAGE_IMAGE_DPI / 72
    for x0, y0, x1, y1 in boxes:
        draw.rectangle((x0 * scale - 1, y0 * scale - 1, x1 * scale + 1, y1 * scale + 1), fill="black")
    return image


def page_image_png(rt: Runtime, doc: Document, page_no: int) -> bytes:
    """Page ``page_no`` of ``doc`` as a PNG at ``PAGE_IMAGE_DPI``: stored, or rendered and stored."""
    if not 1 <= page_no <= doc.page_count:
        raise NotFound(f"page {page_no} of document {doc.id} does not exist "
                       f"(it has {doc.page_count} pages; status {doc.status})")
    key = keys.page_image(doc.id, page_no)
    cached = rt.objects.get_or_none(key)
    if cached is not None:
        return cached
    if not doc.raw_key or not rt.objects.exists(doc.raw_key):
        raise NotFound("the original file of this document is not stored; its pages cannot be shown")
    failed_key = f"page-render-failed:{doc.id}:{page_no}"
    failed = rt.cache.get_json(failed_key)
    if isinstance(failed, dict):
        again = InvalidDocument(str(failed.get("message", "this page cannot be rendered")))
        again.code = str(failed.get("code", again.code))
        raise again
    if not _renders.acquire(timeout=RENDER_WAIT_S):
        raise Busy("too many pages are being rendered right now; try again in a few seconds")
    try:
        with tempfile.TemporaryDirectory(prefix="bunko-page-") as tmp:
            pdf = Path(tmp) / "document.pdf"
            with pdf.open("wb") as fh:
                for part in rt.objects.iter_chunks(doc.raw_key):
                    fh.write(part)
            with SandboxedPdf(pdf, rt.settings.sandbox) as sandboxed:
                rendered = sandboxed.render(page_no, PAGE_IMAGE_DPI)
    except InvalidDocument as exc:  # over the sandbox's limits, corrupt, timed out: it will again
        rt.cache.set_json(failed_key, {"message": exc.message, "code": exc.code}, FAILED_RENDER_TTL_S)
        raise
    finally:
        _renders.release()
    image = _black_out(rendered.image, _redacted_boxes(rt, doc.id, page_no))
    out = io.BytesIO()
    image.save(out, format="PNG")
    png = out.getvalue()
    rt.objects.put(key, png, content_type="image/png")
    return png

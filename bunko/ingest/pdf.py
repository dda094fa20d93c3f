"""Page-level PDF access for the caller: :class:`SandboxedPdf` opens one PDF in its own sandbox
child (``bunko.ingest.sandbox``) and asks it for pages; the child's side is
``bunko.ingest.pdf_child``, the text-layer layout ``bunko.ingest.pdf_layout``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from bunko.domain import OcrBlock
from bunko.ingest.pdf_child import (
    THUMBNAIL_SIZE,
    DocInfo,
    RenderedPage,
    child_layers,
    child_open,
    child_render,
    child_thumbnail,
)
from bunko.ingest.pdf_layout import WireLayer
from bunko.ingest.sandbox import Sandbox
from bunko.settings import SandboxLimits

# Pages whose text layers one request to the sandbox reads (each page still has its own deadline):
# the round trip and the caller's wake-up are paid once per batch, not once per page.
LAYER_BATCH_PAGES = 32


@dataclass
class LayerPage:
    """A page's text layer: raw text (for the quality check) and its Markdown layout."""

    page_no: int
    width_pt: float
    height_pt: float
    raw_text: str
    markdown: str
    blocks: list[OcrBlock] = field(default_factory=list)


class SandboxedPdf:
    """One PDF opened in its own sandbox child; all pdfium work for it happens there.

    >>> with SandboxedPdf(path, settings.sandbox) as pdf:
    ...     layer = pdf.layer(1)
    """

    def __init__(self, path: Path, limits: SandboxLimits) -> None:
        self.path = Path(path)
        self.max_pixels = limits.max_render_pixels
        self._box = Sandbox(memory_mb=limits.memory_mb, timeout_s=limits.page_timeout_s)
        self._info: DocInfo | None = None
        self._opened_pid: int | None = None

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


def _layer_page(data: WireLayer) -> LayerPage:
    page_no, width, height, raw, markdown, blocks = data
    return LayerPage(
        page_no, width, height, raw, markdown,
        [OcrBlock(text, (x0, y0, x1, y1), 1.0, kind) for kind, text, x0, y0, x1, y1 in blocks],
    )


def render_thumbnail(path: Path, limits: SandboxLimits) -> bytes:
    """Page 1 as a 200×300 PNG (fitted, padded white), rendered in a sandbox."""
    with SandboxedPdf(path, limits) as pdf:
        return pdf.thumbnail()

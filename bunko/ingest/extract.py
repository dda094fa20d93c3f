"""Extraction, page by page: the text layer when it is good, OCR otherwise.

For each page (in the document's sandbox child, see ``bunko.ingest.pdf``; text layers are read
in batches of ``LAYER_BATCH_PAGES``, each page under its own deadline):

1. read the text layer; if :func:`text_layer_is_good` accepts it, the page is done (source
   ``layer``, confidence 1.0, Markdown with headings, tables and joined wrapped lines);
2. else rasterise at ``ocr_dpi`` and OCR with the first engine; below ``ocr_min_confidence``
   read again at ``ocr_retry_dpi``; on an engine error, or still low, try the next engine and keep
   the best result;
3. a page that reads as vertical text (tall, narrow lines) goes to an engine that reads 縦書き
   (Tesseract ``jpn_vert``), whose column order is preferred.

Every OCR result is cached through :class:`OcrCache` under
``{cache_prefix}p{page:04d}-{engine}-{version}-{dpi}.json``, so a re-run after a crash does not OCR
again. The ingest pipeline gives each document its own prefix (``bunko.store.keys.ocr_cache_prefix``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from PIL import Image

from bunko import metrics, tracing
from bunko.domain import OcrBlock, PageText
from bunko.errors import BunkoError, OcrFailed
from bunko.ingest.pdf import LAYER_BATCH_PAGES, LayerPage, SandboxedPdf
from bunko.ingest.quality import text_layer_is_good
from bunko.ingest.validate import sha256_file
from bunko.models.base import OcrEngine, OcrResult
from bunko.models.ocr import VerticalOcrEngine, looks_vertical
from bunko.settings import OcrPolicy, SandboxLimits
from bunko.store import keys

log = logging.getLogger(__name__)


class OcrCache(Protocol):
    """Where OCR outputs are kept (the object store satisfies it)."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes, content_type: str) -> None: ...


def result_to_json(result: OcrResult, *, version: str, dpi: int) -> bytes:
    return json.dumps(
        {
            "engine": result.engine,
            "version": version,
            "dpi": dpi,
            "confidence": result.confidence,
            "markdown": result.markdown,
            "blocks": [
                {"text": b.text, "bbox": list(b.bbox), "confidence": b.confidence, "kind": b.kind}
                for b in result.blocks
            ],
        },
        ensure_ascii=False,
    ).encode("utf-8")


def result_from_json(data: bytes) -> OcrResult:
    doc = json.loads(data)
    blocks = [
        OcrBlock(
            text=b["text"], bbox=(b["bbox"][0], b["bbox"][1], b["bbox"][2], b["bbox"][3]),
            confidence=float(b["confidence"]), kind=b.get("kind", "text"),
        )
        for b in doc["blocks"]
    ]
    return OcrResult(
        engine=doc["engine"], blocks=blocks, markdown=doc["markdown"], confidence=float(doc["confidence"])
    )


class _PageOcr:
    """OCR of one page: renders on demand (once per dpi), consults and fills the cache."""

    def __init__(
        self, pdf: SandboxedPdf, page_no: int, cache_prefix: str, cache: OcrCache | None
    ) -> None:
        self.pdf, self.page_no, self.cache_prefix, self.cache = pdf, page_no, cache_prefix, cache
        self._images: dict[int, tuple[Image.Image, int]] = {}

    def _image(self, dpi: int) -> tuple[Image.Image, int]:
        if dpi not in self._images:
            rendered = self.pdf.render(self.page_no, dpi)
            self._images[dpi] = (rendered.image, rendered.dpi)
        return self._images[dpi]

    def run(self, engine: OcrEngine, dpi: int, *, vertical: bool = False) -> OcrResult:
        if vertical and isinstance(engine, VerticalOcrEngine):
            version, read = engine.vertical_version, engine.recognize_vertical
        else:
            version, read = engine.version, engine.recognize
        key = keys.ocr_result(self.cache_prefix, self.page_no, engine.name, version, dpi)
        if self.cache is not None:
            cached = self.cache.get(key)
            if cached is not None:
                return result_from_json(cached)
        image, dpi_used = self._image(dpi)
        started = time.perf_counter()
        result = read(image, dpi=dpi_used)
        metrics.ocr_duration_seconds.labels(engine=engine.name).observe(time.perf_counter() - started)
        if self.cache is not None:
            self.cache.put(key, result_to_json(result, version=version, dpi=dpi_used), "application/json")
        return result


def _better(a: OcrResult | None, b: OcrResult) -> OcrResult:
    return b if a is None or b.confidence > a.confidence else a


def ocr_page(
    pdf: SandboxedPdf,
    page_no: int,
    *,
    cache_prefix: str,
    policy: OcrPolicy,
    engines: list[OcrEngine],
    cache: OcrCache | None = None,
) -> OcrResult:
    """The best OCR reading of one page under the retry / fallback / vertical rules."""
    with tracing.span("ocr", **{"bunko.page": page_no}) as span:
        result = _ocr_page(pdf, page_no, cache_prefix=cache_prefix, policy=policy, engines=engines, cache=cache)
        span.set_attribute("bunko.ocr.confidence", float(result.confidence))
        return result


def _ocr_page(
    pdf: SandboxedPdf,
    page_no: int,
    *,
    cache_prefix: str,
    policy: OcrPolicy,
    engines: list[OcrEngine],
    cache: OcrCache | None,
) -> OcrResult:
    if not engines:
        raise OcrFailed(f"page {page_no} needs OCR but no OCR engine is configured (BUNKO_OCR_ENGINES)")
    job = _PageOcr(pdf, page_no, cache_prefix, cache)
    best: OcrResult | None = None
    errors: list[str] = []
    for engine in engines:
        try:
            result = job.run(engine, policy.dpi)
            if result.confidence < policy.min_confidence and policy.retry_dpi != policy.dpi:
                result = _better(result, job.run(engine, policy.retry_dpi))
        except BunkoError as e:
            if e.code in ("unsafe", "timeout"):  # the page itself is hostile: no engine will help
                raise
            errors.append(f"{engine.name}: {e.message}")
            log.warning("OCR engine %s failed on page %d: %s", engine.name, page_no, e.message)
            continue
        except Exception as e:  # an engine bug must not fail the page while another may read it
            errors.append(f"{engine.name}: {type(e).__name__}: {e}")
            log.warning("OCR engine %s failed on page %d", engine.name, page_no, exc_info=True)
            continue
        best = _better(best, result)
        if looks_vertical(best.blocks):
            vertical = _read_vertical(job, engines, policy)
            if vertical is not None:
                return vertical
        if best.confidence >= policy.min_confidence:
            break
    if best is None:
        raise OcrFailed(f"every OCR engine failed on page {page_no}: " + "; ".join(errors))
    return best


def _read_vertical(job: _PageOcr, engines: list[OcrEngine], policy: OcrPolicy) -> OcrResult | None:
    for engine in engines:
        if isinstance(engine, VerticalOcrEngine):
            try:
                result = job.run(engine, policy.dpi, vertical=True)
            except BunkoError as e:
                if e.code in ("unsafe", "timeout"):
                    raise
                log.warning("vertical OCR with %s failed on page %d: %s", engine.name, job.page_no, e.message)
                continue
            if result.blocks:
                return result
    return None


def _layer_page(layer: LayerPage) -> PageText:
    return PageText(
        page_no=layer.page_no,
        markdown=layer.markdown,
        source="layer",
        confidence=1.0,
        width_pt=layer.width_pt,
        height_pt=layer.height_pt,
        blocks=list(layer.blocks),
    )


def _all_layers(pdf: SandboxedPdf, total: int) -> Iterator[LayerPage]:
    # A whole batch is read before its pages are handled: OCR talks to the same sandbox.
    for first in range(1, total + 1, LAYER_BATCH_PAGES):
        yield from pdf.layers(first, min(total, first + LAYER_BATCH_PAGES - 1))


def extract_document(
    path: Path,
    *,
    sandbox: SandboxLimits,
    ocr: OcrPolicy,
    engines: list[OcrEngine],
    cache: OcrCache | None = None,
    on_page: Callable[[int, int], None] | None = None,
    cache_prefix: str | None = None,
) -> list[PageText]:
    """Every page of ``path`` as :class:`PageText` (1-based page numbers, in order).

    Raises :class:`UnsafeDocument` / :class:`ExtractionTimeout` when the PDF breaks the sandbox's
    limits, :class:`OcrFailed` when a page needs OCR and no engine can read it.
    """
    path = Path(path)
    if cache_prefix is None:
        cache_prefix = keys.file_ocr_cache_prefix(sha256_file(path)) if cache is not None else ""
    pages: list[PageText] = []
    with SandboxedPdf(path, sandbox) as pdf:
        total = pdf.info.page_count
        for layer in _all_layers(pdf, total):
            page_no = layer.page_no
            good, reason = text_layer_is_good(layer.raw_text, layer.width_pt * layer.height_pt)
            if good:
                pages.append(_layer_page(layer))
            else:
                log.debug("page %d goes to OCR: %s", page_no, reason)
                result = ocr_page(
                    pdf, page_no, cache_prefix=cache_prefix, policy=ocr, engines=engines, cache=cache
                )
                pages.append(
                    PageText(
                        page_no=page_no,
                        markdown=result.markdown,
                        source=result.engine,
                        confidence=result.confidence,
                        width_pt=layer.width_pt,
                        height_pt=layer.height_pt,
                        blocks=list(result.blocks),
                    )
                )
            if on_page is not None:
                on_page(page_no, total)
    return pages

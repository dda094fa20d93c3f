"""One document through extract → chunk → embed → index → thumbnail.

Every stage is idempotent, so a job re-run after a crash (its worker SIGKILLed, its lease lost)
converges on the same result: pages and chunks are replaced, vectors are upserted by deterministic
chunk id after the document's old vectors are deleted, and OCR output is cached in the object store
by (file hash, page, engine, version, dpi) so a re-run does not OCR again.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete

from bunko import tracing
from bunko.collections import CollectionConfig, collection_config
from bunko.domain import ChunkDraft, DocumentStatus, PageText
from bunko.errors import Unavailable
from bunko.ingest.extract import extract_document
from bunko.ingest.pdf import render_thumbnail
from bunko.ingest.privacy import PageFinding, screen_pages
from bunko.ingest.types import Heartbeat
from bunko.retrieve.recipe import recipe_for
from bunko.store import keys
from bunko.store.db import Chunk, Collection, Document, Page, PiiFinding
from bunko.store.objects import ocr_cache
from bunko.store.vectors import VectorRow
from bunko.text.chunking import chunk_pages
from bunko.text.furniture import strip_furniture
from bunko.text.tokenize import index_tokens

if TYPE_CHECKING:
    from bunko.runtime import Runtime

log = logging.getLogger(__name__)


# Share of the progress bar each stage covers; extraction dominates on scanned PDFs.
_EXTRACT_END, _EMBED_END = 0.7, 0.95


def chunk_id(document_id: str, chunk_index: int) -> str:
    return f"{document_id}-{chunk_index:05d}"


def indexed_text(title: str, draft: ChunkDraft) -> str:
    """What the embedder and BM25 see: the chunk under its document title and section, so a table
    or a paragraph that never names its document can still be found by it (bench/quality.py:
    recall@5 0.966 -> 1.000). The stored and cited text stays the chunk alone."""
    head = f"{title} / {draft.section}" if draft.section else title
    return f"{head}\n{draft.text}" if head else draft.text


def make_processor(rt: Runtime) -> Callable[[str, Heartbeat], None]:
    """The ``process`` callable the worker loop runs for each claimed job."""

    def process(document_id: str, heartbeat: Heartbeat) -> None:
        process_document(rt, document_id, heartbeat)

    return process


def process_document(rt: Runtime, document_id: str, heartbeat: Heartbeat = lambda: None) -> None:
    with rt.sessions() as s:
        doc = s.get(Document, document_id)
        if doc is None:
            log.warning("job for deleted document %s dropped", document_id)
            return
        coll = doc.collection
        s.expunge_all()
    _set_stage(rt, document_id, "extract", 0.0, status=DocumentStatus.processing)

    with tempfile.TemporaryDirectory(prefix="bunko-doc-") as tmp:
        pdf = Path(tmp) / "document.pdf"
        with pdf.open("wb") as fh:
            for part in rt.objects.iter_chunks(doc.raw_key):
                fh.write(part)
        cfg = collection_config(coll)
        with tracing.span("extract") as span:
            pages = _extract(rt, doc, pdf, heartbeat)
            span.set_attribute("bunko.pages", len(pages))
        if cfg.pii != "off":
            _set_stage(rt, document_id, "pii", _EXTRACT_END)
            with tracing.span("pii", **{"bunko.pii_policy": cfg.pii}) as span:
                pages, found = screen_pages(rt.pii, pages, cfg.pii, heartbeat)
                span.set_attribute("bunko.pii_findings", len(found))
        else:
            found = []
        _store_pages(rt, doc, pages)
        _store_findings(rt, doc, found, redacted=cfg.pii == "redact")
        heartbeat()

        _set_stage(rt, document_id, "chunk", _EXTRACT_END)
        with tracing.span("chunk") as span:
            drafts = chunk_document(pages, cfg)
            span.set_attribute("bunko.chunks", len(drafts))

        _set_stage(rt, document_id, "embed", _EXTRACT_END)
        with tracing.span("embed", **{"bunko.texts": len(drafts)}):
            vectors = embed_texts(rt, [indexed_text(doc.title, d) for d in drafts], owner_id=doc.owner_id,
                                  document_id=document_id, heartbeat=heartbeat)

        _set_stage(rt, document_id, "index", _EMBED_END)
        with tracing.span("index"):
            index_chunks(rt, doc, coll.id, coll.vector_collection, cfg, drafts, vectors)
        heartbeat()

        _set_stage(rt, document_id, "thumbnail", 0.98)
        with tracing.span("thumbnail"):
            rt.objects.put(keys.thumbnail(doc.id), render_thumbnail(pdf, rt.settings.sandbox),
                           content_type="image/png")

    with rt.sessions.begin() as s:
        d = s.get(Document, document_id)
        now = s.get(Collection, coll.id)
        if now is not None and collection_config(now).pii != cfg.pii:
            # The policy changed while this ran (the operator re-queues every document, but this
            # one was busy): a retry makes its pages again under the new policy.
            raise Unavailable(f"the collection's PII policy changed to {collection_config(now).pii!r} "
                              "while this document was processed; processing it again")
        if d is not None:
            d.status = DocumentStatus.completed.value
            d.stage = "done"
            d.progress = 1.0
            d.chunk_count = len(drafts)
            d.page_count = len(pages)
            d.error = None
            d.error_code = None
            d.completed_at = datetime.now(UTC)
    # New searchable content: answers cached for this collection are stale now.
    rt.cache.bump(f"collection:{coll.id}")


def chunk_document(pages: list[PageText], cfg: CollectionConfig) -> list[ChunkDraft]:
    """A document's chunks as its collection's index version makes them (running headers and
    footers removed first where the version says so; the stored pages keep them)."""
    if recipe_for(cfg.index_version).strip_furniture:
        pages = strip_furniture(pages)
    return chunk_pages(pages, chunk_size=cfg.chunk_size, chunk_overlap=cfg.chunk_overlap,
                       table_max_chars=cfg.table_max_chars)


def _extract(rt: Runtime, doc: Document, pdf: Path, heartbeat: Heartbeat) -> list[PageText]:
    last = [0.0]

    def on_page(done: int, total: int) -> None:
        heartbeat()
        now = time.monotonic()
        # Throttled: a 1,000-page born-digital PDF must not become 1,000 progress transactions.
        if done == total or now - last[0] > 0.5:
            last[0] = now
            _set_stage(rt, doc.id, "extract", _EXTRACT_END * done / max(total, 1))

    return extract_document(pdf, sandbox=rt.settings.sandbox, ocr=rt.settings.ocr, engines=rt.ocr_engines,
                            cache=ocr_cache(rt.objects), on_page=on_page,
                            cache_prefix=keys.ocr_cache_prefix(doc.id))


def _store_findings(rt: Runtime, doc: Document, found: list[PageFinding], *, redacted: bool) -> None:
    rows = [PiiFinding(document_id=doc.id, page_no=p.page_no, entity=p.finding.entity, start=p.finding.start,
                       end=p.finding.end, score=p.finding.score, redacted=redacted) for p in found]
    with rt.sessions.begin() as s:
        s.execute(delete(PiiFinding).where(PiiFinding.document_id == doc.id))
        s.add_all(rows)


def _store_pages(rt: Runtime, doc: Document, pages: list[PageText]) -> None:
    # Pictures rendered from an earlier run were drawn with that run's redactions.
    rt.objects.delete_prefix(keys.page_images(doc.id))
    rows = []
    for p in pages:
        md_key = keys.page_markdown(doc.id, p.page_no)
        js_key = keys.page_blocks(doc.id, p.page_no)
        rt.objects.put(md_key, p.markdown.encode(), content_type="text/markdown; charset=utf-8")
        payload = {"page": p.page_no, "source": p.source, "confidence": p.confidence,
                   "width_pt": p.width_pt, "height_pt": p.height_pt,
                   "blocks": [asdict(b) for b in p.blocks]}
        rt.objects.put(js_key, json.dumps(payload, ensure_ascii=False).encode(),
                       content_type="application/json")
        rows.append(Page(document_id=doc.id, page_no=p.page_no, source=p.source, confidence=p.confidence,
                         char_count=len(p.markdown), width_pt=p.width_pt, height_pt=p.height_pt,
                         markdown_key=md_key, blocks_key=js_key, markdown=p.markdown))
    with rt.sessions.begin() as s:
        s.execute(delete(Page).where(Page.document_id == doc.id))
        s.add_all(rows)


def embed_texts(rt: Runtime, texts: list[str], *, owner_id: str, document_id: str | None = None,
                heartbeat: Heartbeat = lambda: None) -> list[list[float]]:
    """Document embeddings in batches, cached for the document's owner only (an upload of text
    someone else sent must take as long as a first one); progress on ``document_id``'s row."""
    batch = rt.settings.embed_batch_size
    out: list[list[float]] = []
    embedder = rt.embedder_for(owner_id)
    for start in range(0, len(texts), batch):
        out.extend(embedder.embed_documents(texts[start:start + batch]).tolist())
        heartbeat()
        if document_id is None:
            continue
        done = min(start + batch, len(texts))
        _set_stage(rt, document_id, "embed",
                   _EXTRACT_END + (_EMBED_END - _EXTRACT_END) * done / max(len(texts), 1))
    return out


def index_chunks(rt: Runtime, doc: Document, collection_id: str, vector_collection: str,
                 cfg: CollectionConfig, drafts: list[ChunkDraft], vectors: list[list[float]]) -> None:
    """A document's chunks into ``vector_collection`` (BM25 terms by ``cfg``'s index version) and
    its chunk rows."""
    created = int((doc.created_at or datetime.now(UTC)).timestamp())
    analyzer = recipe_for(cfg.index_version).analyzer
    rows = [
        VectorRow(
            chunk_id=chunk_id(doc.id, d.chunk_index), document_id=doc.id, collection_id=collection_id,
            page_no=d.page_no, chunk_index=d.chunk_index, kind=d.kind, section=d.section[:500],
            title=doc.title, text=d.text, tokens=index_tokens(indexed_text(doc.title, d), analyzer),
            dense=vec,
            owner_id=doc.owner_id, visibility=doc.visibility, allowed_roles=list(doc.allowed_roles),
            tags=list(doc.tags), created_at=created,
        )
        for d, vec in zip(drafts, vectors, strict=True)
    ]
    # The first document indexed creates the vector collection: the operator leaves the vector store
    # to the workers (a collection it made has a row and no vectors yet). Its dimension is the
    # embedder's, which made ``vectors``.
    if vectors:
        rt.vectors.ensure_collection(vector_collection, len(vectors[0]), index_type=cfg.index_type,
                                     index_params=cfg.index_params())
    # Delete-then-upsert: a re-run that yields fewer chunks must not leave the old tail behind (and
    # with no chunks, a collection not made yet has nothing to clear).
    if vectors or rt.vectors.has(vector_collection):
        rt.vectors.delete_document(vector_collection, doc.id)
    if rows:
        rt.vectors.upsert(vector_collection, rows)
    with rt.sessions.begin() as s:
        s.execute(delete(Chunk).where(Chunk.document_id == doc.id))
        s.add_all(Chunk(id=r.chunk_id, document_id=doc.id, collection_id=collection_id, chunk_index=r.chunk_index,
                        page_no=r.page_no, kind=r.kind, section=r.section, text=r.text) for r in rows)


def _set_stage(rt: Runtime, document_id: str, stage: str, progress: float,
               status: DocumentStatus | None = None) -> None:
    with rt.sessions.begin() as s:
        d = s.get(Document, document_id)
        if d is None:
            return
        d.stage = stage
        d.progress = round(progress, 4)
        if status is not None:
            d.status = status.value

"""Rebuilding a collection's index with the current recipe (``bunko reindex``, the API's
``POST /api/v1/collections/{name}/reindex``, the operator's ``reindex.bunko.dev/requested`` annotation).

A new Bunko release may change what goes into the index (the BM25 analysis, header/footer removal,
the embedding model): :data:`bunko.retrieve.recipe.INDEX_VERSION` moves on, and collections built
before keep answering with the analysis they were built with. Reindexing rebuilds one from what is
already stored — every completed document's pages (the extracted text and OCR output in the
database), re-chunked, re-embedded and indexed into a *new* vector collection — while the old one
keeps answering; then the collection switches over in one transaction and the old index is dropped.
Nothing is extracted or OCR'd again, and no document is lost: one completed by a worker while the
rebuild ran is picked up before the switch, one a worker is still indexing into the old index
when the switch happens is re-queued and lands in the new one, and one deleted meanwhile is taken
out of the new index too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from bunko.collections import CollectionConfig, collection_config, get_collection
from bunko.domain import DocumentStatus, PageText
from bunko.errors import Conflict
from bunko.ingest import jobs
from bunko.ingest.pipeline import chunk_document, embed_texts, index_chunks, indexed_text
from bunko.ingest.types import Heartbeat
from bunko.retrieve import recipe
from bunko.store.db import Collection, Document, Page

if TYPE_CHECKING:
    from bunko.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class ReindexReport:
    collection: str
    from_version: str
    to_version: str
    documents: int = 0
    chunks: int = 0
    requeued: int = 0
    seconds: float = 0.0
    vector_collection: str = ""
    changes: list[str] = field(default_factory=list)


def needs_reindex(rt: Runtime, coll: Collection) -> list[str]:
    """Why ``coll``'s index is not what a new collection would get (empty: it is current)."""
    cfg = collection_config(coll)
    why = []
    if cfg.index_version != recipe.INDEX_VERSION:
        why.append(f"index version {cfg.index_version} -> {recipe.INDEX_VERSION}")
    embedder = rt.embedder
    if coll.embedding_model != embedder.model_id:
        why.append(f"embedding model {coll.embedding_model} -> {embedder.model_id}")
    return why


def _next_vector_name(current: str, version: str) -> str:
    base = current.split("__v")[0]
    name = f"{base}__v{version}"
    return name if name != current else f"{base}__v{version}b"


def _pages(rt: Runtime, document_id: str) -> list[PageText]:
    with rt.sessions() as s:
        rows = s.scalars(select(Page).where(Page.document_id == document_id).order_by(Page.page_no)).all()
        return [PageText(page_no=r.page_no, markdown=r.markdown or "", source=r.source,
                         confidence=r.confidence, width_pt=r.width_pt, height_pt=r.height_pt) for r in rows]


def _completed(rt: Runtime, collection_id: str) -> dict[str, Document]:
    with rt.sessions() as s:
        docs = s.scalars(select(Document).where(Document.collection_id == collection_id,
                                                Document.status == DocumentStatus.completed.value)).all()
        s.expunge_all()
        return {d.id: d for d in docs}


def reindex_collection(rt: Runtime, name: str, *, force: bool = False,
                       progress: Callable[[int, int], None] | None = None) -> ReindexReport:
    """Rebuild collection ``name`` with the current recipe and embedding model (see the module
    docstring). Without ``force``, a collection that is already current is left alone."""
    started = time.perf_counter()
    coll = get_collection(rt, name)
    old_cfg = collection_config(coll)
    changes = needs_reindex(rt, coll)
    report = ReindexReport(coll.name, old_cfg.index_version, recipe.INDEX_VERSION,
                           vector_collection=coll.vector_collection, changes=changes)
    if not changes and not force:
        return report
    # The new index gets the current recipe's analysis and refusal; chunk sizes and the dense
    # index type stay the collection's own.
    new_cfg = CollectionConfig.model_validate({
        **old_cfg.model_dump(), "index_version": recipe.INDEX_VERSION,
        "not_found_bm25_share": recipe.NOT_FOUND_BM25_SHARE,
    })
    embedder = rt.embedder
    new_name = _next_vector_name(coll.vector_collection, recipe.INDEX_VERSION)
    rt.vectors.drop(new_name)  # a rebuild that died half way left a partial one
    rt.vectors.ensure_collection(new_name, embedder.dim, index_type=new_cfg.index_type,
                                 index_params=new_cfg.index_params())
    done: set[str] = set()

    def catch_up() -> None:
        todo = {k: d for k, d in _completed(rt, coll.id).items() if k not in done}
        for i, doc in enumerate(todo.values(), 1):
            drafts = chunk_document(_pages(rt, doc.id), new_cfg)
            vectors = embed_texts(rt, [indexed_text(doc.title, d) for d in drafts], owner_id=doc.owner_id)
            index_chunks(rt, doc, coll.id, new_name, new_cfg, drafts, vectors)
            done.add(doc.id)
            report.chunks += len(drafts)
            if progress is not None:
                progress(len(done), len(done) + len(todo) - i)

    catch_up()
    catch_up()  # documents a worker completed while the first pass ran
    with rt.sessions.begin() as s:
        row = s.get(Collection, coll.id)
        if row is None:
            rt.vectors.drop(new_name)
            raise Conflict(f"collection {name!r} was deleted while it was being reindexed")
        old_name = row.vector_collection
        row.vector_collection = new_name
        row.config = new_cfg.model_dump()
        row.embedding_model = embedder.model_id
        row.embedding_dim = embedder.dim
    catch_up()  # completed between the last pass and the switch
    # Deleted while the rebuild ran: their delete went to the old index only.
    for doc_id in done - set(_completed(rt, coll.id)):
        rt.vectors.delete_document(new_name, doc_id)
        done.discard(doc_id)
    # Documents a worker was indexing at the switch wrote into the old index: run them again.
    with rt.sessions.begin() as s:
        busy = s.scalars(select(Document.id).where(
            Document.collection_id == coll.id,
            Document.status.in_([DocumentStatus.pending.value, DocumentStatus.processing.value]),
        )).all()
        for doc_id in busy:
            jobs.requeue(s, doc_id)
    report.requeued = len(busy)
    rt.vectors.drop(old_name)
    rt.cache.bump(f"collection:{coll.id}")
    report.documents = len(done)
    report.vector_collection = new_name
    report.seconds = round(time.perf_counter() - started, 2)
    log.info("reindexed %s: %d documents, %d chunks, v%s -> v%s in %.1f s", coll.name, report.documents,
             report.chunks, report.from_version, report.to_version, report.seconds)
    return report


def make_reindexer(rt: Runtime) -> Callable[[str, Heartbeat], None]:
    """The worker's runner of a collection's reindex job (the operator's
    ``reindex.bunko.dev/requested`` annotation queues one, bunko.ingest.jobs.enqueue_reindex)."""

    def run(collection_id: str, heartbeat: Heartbeat) -> None:
        with rt.sessions() as s:
            name = s.scalar(select(Collection.name).where(Collection.id == collection_id))
        if name is None:
            log.warning("reindex job for deleted collection %s dropped", collection_id)
            return
        heartbeat()
        reindex_collection(rt, name, force=True, progress=lambda _done, _left: heartbeat())

    return run

"""What a DocumentCollection owns in the stores: a Milvus collection, object prefixes, database rows.

No kopf here: plain functions over a ``Runtime``, each safe to run again after a failure anywhere
in the middle (the handler retries them). Creating and deleting are the core's
(``bunko.collections``); what is the operator's own is deciding which, from the spec. The database
row's id is the custom resource's uid (without dashes), so the row says which object owns it
without any extra bookkeeping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from bunko.access import validate_visibility
from bunko.collections import (
    CollectionConfig,
    create_collection,
    delete_collection,
    parse_config,
    vector_collection_name,
)
from bunko.errors import Conflict, NotFound, Unavailable
from bunko.ingest import jobs
from bunko.ingest.submit import reprocess_document
from bunko.store.db import Chunk, Collection, Document, Job

if TYPE_CHECKING:
    from bunko.runtime import Runtime

# Fields whose change makes the stored chunks or vectors stale.
CHUNKING_FIELDS = ("chunk_size", "chunk_overlap", "table_max_chars")
INDEX_FIELDS = ("index_type", "nlist", "hnsw_m", "hnsw_ef_construction")


def row_id(uid: str) -> str:
    return uid.replace("-", "")[:32]


@dataclass
class Outcome:
    action: str  # created | updated | unchanged | reindex-required | reindexing
    collection_id: str
    vector_collection: str
    changes: list[str] = field(default_factory=list)
    requeued: int = 0


def stale_because(row: Collection, model: str, dim: int, cfg: CollectionConfig) -> list[str]:
    """Why the stored chunks/vectors no longer match the spec (empty: they still do)."""
    old = parse_config(row.config)
    why = []
    if row.embedding_model != model or row.embedding_dim != dim:
        why.append(
            f"embedding model {row.embedding_model} ({row.embedding_dim} dims) -> {model} ({dim} dims)"
        )
    for f in CHUNKING_FIELDS + INDEX_FIELDS:
        if getattr(old, f) != getattr(cfg, f):
            why.append(f"{f} {getattr(old, f)} -> {getattr(cfg, f)}")
    return why


def reconcile(
    rt: Runtime,
    *,
    name: str,
    uid: str,
    pipeline: str,
    model: str,
    dim: int,
    cfg: CollectionConfig,
    description: str = "",
    visibility: str = "collection",
    roles: Sequence[str] = (),
    automatic: bool = False,
) -> Outcome:
    """Make the stores match the spec; what changed, and whether documents must be re-processed."""
    cid, vname = row_id(uid), vector_collection_name(name)
    with rt.sessions() as s:
        row = s.scalar(select(Collection).where(Collection.name == name))
    if row is not None and row.id != cid:
        raise Conflict(
            f"collection {name!r} already exists and belongs to someone else (created through "
            "the API or by another DocumentCollection); pick another metadata.name"
        )
    visibility, allowed = validate_visibility(visibility, roles)
    fields = {
        "description": description,
        "pipeline": pipeline,
        "visibility": visibility,
        "allowed_roles": allowed,
    }
    if row is None:
        create_collection(rt, name, description=description, config=cfg, visibility=visibility,
                          allowed_roles=roles, pipeline=pipeline, collection_id=cid, embedding=(model, dim),
                          owner={"uid": uid})
        return Outcome("created", cid, vname)

    why = stale_because(row, model, dim, cfg)
    old_pii = parse_config(row.config).pii
    # A privacy policy covers the documents already there too, so its change re-processes them
    # whatever reindexPolicy says (a document busy meanwhile notices the change when it finishes).
    pii_change = [f"pii {old_pii} -> {cfg.pii}"] if old_pii != cfg.pii else []
    if why and not automatic:
        # Keep the parameters the stored data was made with; change only what is read at query time.
        old = parse_config(row.config)
        kept = {f: getattr(old, f) for f in CHUNKING_FIELDS + INDEX_FIELDS}
        _update_row(rt, cid, config=cfg.model_copy(update=kept).model_dump(), **fields)
        rt.vectors.ensure_collection(
            vname, row.embedding_dim, index_type=old.index_type, index_params=old.index_params()
        )
        requeued = requeue_documents(rt, cid) if pii_change else 0
        return Outcome("reindex-required", cid, vname, why + pii_change, requeued)
    if why:
        rebuild = any(not w.startswith(CHUNKING_FIELDS) for w in why)
        if rebuild:
            rt.vectors.drop(vname)
        rt.vectors.ensure_collection(vname, dim, index_type=cfg.index_type, index_params=cfg.index_params())
        requeued = requeue_documents(rt, cid)
        # The row last: until it says the new model, a retry finds the work still to do.
        _update_row(rt, cid, config=cfg.model_dump(), embedding_model=model, embedding_dim=dim, **fields)
        rt.cache.bump(f"collection:{cid}")
        return Outcome("reindexing", cid, vname, why + pii_change, requeued)
    rt.vectors.ensure_collection(vname, dim, index_type=cfg.index_type, index_params=cfg.index_params())
    changed = _update_row(rt, cid, config=cfg.model_dump(), **fields)
    if changed:
        rt.cache.bump(f"collection:{cid}")
    if pii_change:
        return Outcome("reindexing", cid, vname, pii_change, requeue_documents(rt, cid))
    return Outcome("updated" if changed else "unchanged", cid, vname)


def _update_row(rt: Runtime, cid: str, **values: Any) -> bool:
    with rt.sessions.begin() as s:
        row = s.get(Collection, cid)
        if row is None:
            raise NotFound(f"collection row {cid} vanished while being reconciled")
        changed = False
        for key, value in values.items():
            if getattr(row, key) != value:
                setattr(row, key, value)
                changed = True
    return changed


def requeue_documents(rt: Runtime, cid: str) -> int:
    """Queue every document of the collection for re-processing (all stages re-run, idempotently)."""
    with rt.sessions() as s:
        ids = list(s.scalars(select(Document.id).where(Document.collection_id == cid)))
    busy = []
    for doc_id in ids:
        try:
            reprocess_document(rt, doc_id)
        except Conflict:
            busy.append(doc_id)
        except NotFound:
            continue  # deleted meanwhile
    if busy:
        raise Unavailable(
            f"{len(busy)} of {len(ids)} documents are being processed right now; "
            "re-indexing continues when they finish"
        )
    return len(ids)


def queue_reindex(rt: Runtime, cid: str) -> int:
    """Queue the rebuild of the collection's index for the workers (the operator holds no text
    analysis or embedding client); the id of the queued job, or of the one already waiting."""
    with rt.sessions.begin() as s:
        if s.get(Collection, cid) is None:
            raise NotFound(f"collection row {cid} does not exist (yet)")
        return jobs.enqueue_reindex(s, cid).id


@dataclass
class ReindexState:
    status: str  # the job's: queued | running | done | failed | gone (deleted with its collection)
    error: str | None
    index_version: str
    vector_collection: str


def reindex_state(rt: Runtime, cid: str, job_id: int) -> ReindexState | None:
    """Where the reindex job stands, with what the collection's row says now (None: row gone)."""
    with rt.sessions() as s:
        row = s.get(Collection, cid)
        if row is None:
            return None
        job = s.get(Job, job_id)
        return ReindexState(job.status if job is not None else "gone", job.last_error if job else None,
                            parse_config(row.config).index_version, row.vector_collection)


def counts(rt: Runtime, cid: str) -> tuple[int, int]:
    """(documents, chunks) of a collection."""
    with rt.sessions() as s:
        docs = s.scalar(select(func.count()).select_from(Document).where(Document.collection_id == cid))
        chunks = s.scalar(select(func.count()).select_from(Chunk).where(Chunk.collection_id == cid))
    return int(docs or 0), int(chunks or 0)


def in_progress(rt: Runtime, cid: str) -> int:
    """Documents still queued or being processed."""
    with rt.sessions() as s:
        n = s.scalar(
            select(func.count())
            .select_from(Document)
            .where(Document.collection_id == cid, Document.status.in_(("pending", "processing")))
        )
    return int(n or 0)


def remove(rt: Runtime, *, name: str, uid: str) -> bool:
    """Delete the collection's vectors, objects and rows; False when it owns nothing (already gone)."""
    cid, vname = row_id(uid), vector_collection_name(name)
    with rt.sessions() as s:
        row = s.scalar(select(Collection).where(Collection.name == name))
        if row is not None and row.id != cid:
            return False  # someone else's collection of the same name: not ours to delete
    # A retry after the row went finds the vectors by the name alone.
    delete_collection(rt, cid, vector_collection=row.vector_collection if row is not None else vname)
    return row is not None

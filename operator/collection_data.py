"""What a DocumentCollection owns in the stores: a Milvus collection, object prefixes, database rows.

No kopf here: plain functions over a ``Runtime``, each safe to run again after a failure anywhere
in the middle (the handler retries them). Creating and deleting are the core's
(``bunko.collections``); what is the operator's own is deciding which, from the spec. The database
row's id is the custom resource's uid (without dashes), so the row says which object owns it
without any extra bookkeeping.

The operator never talks to Milvus (its image has no vector-store client): the first document a
worker indexes creates the vector collection the row names, and a vector collection that a
rebuild or a deletion leaves behind is dropped by a worker, from a job queued here.
"""

from __future__ import annotations

import hashlib
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
                          owner={"uid": uid}, vectors=False)
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
        requeued = requeue_documents(rt, cid) if pii_change else 0
        return Outcome("reindex-required", cid, row.vector_collection, why + pii_change, requeued)
    if why:
        vectors = row.vector_collection
        if any(not w.startswith(CHUNKING_FIELDS) for w in why):
            # New vectors (another model, dimension or index) go into a new vector collection, which
            # the first re-processed document creates; the old one is dropped by a worker.
            vectors = rebuilt_name(name, model, dim, cfg)
        requeued = requeue_documents(rt, cid)
        # The row last: until it says the new model, a retry finds the work still to do.
        with rt.sessions.begin() as s:
            current = s.get(Collection, cid)
            if current is None:
                raise NotFound(f"collection row {cid} vanished while being reconciled")
            if vectors != current.vector_collection:
                jobs.enqueue_drop_vectors(s, current.vector_collection, delay_s=rt.settings.jobs.lease_s)
            current.vector_collection = vectors
        _update_row(rt, cid, config=cfg.model_dump(), embedding_model=model, embedding_dim=dim, **fields)
        rt.cache.bump(f"collection:{cid}")
        return Outcome("reindexing", cid, vectors, why + pii_change, requeued)
    changed = _update_row(rt, cid, config=cfg.model_dump(), **fields)
    if changed:
        rt.cache.bump(f"collection:{cid}")
    if pii_change:
        return Outcome("reindexing", cid, row.vector_collection, pii_change, requeue_documents(rt, cid))
    return Outcome("updated" if changed else "unchanged", cid, row.vector_collection)


def rebuilt_name(name: str, model: str, dim: int, cfg: CollectionConfig) -> str:
    """The vector collection for ``name`` built with this model and dense index: the same inputs
    give the same name, so a reconcile that is retried half way finishes the same rebuild."""
    recipe = f"{model}|{dim}|{cfg.index_type}|{sorted(cfg.index_params().items())}"
    return f"{vector_collection_name(name)}__m{hashlib.sha256(recipe.encode()).hexdigest()[:10]}"


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
    if row is None:
        # Gone already, or never made: a create that died before its row can have left the marker
        # object, and no vectors (only workers make those, for a row's documents).
        delete_collection(rt, cid, vector_collection=vname, queue_drop=lambda _s, _vectors: None)
        return False
    delete_collection(rt, cid, vector_collection=row.vector_collection,
                      queue_drop=lambda s, vectors: jobs.enqueue_drop_vectors(s, vectors,
                                                                              delay_s=rt.settings.jobs.lease_s))
    return True

"""DocumentCollection → database row + object prefix (+ the Milvus collection the workers make); removed
behind a finalizer.

Thin wiring over ``collection_data``: validate, resolve the Pipeline's embedding model (its
dimension comes from the catalogue), reconcile the stores, report status, Events and metrics.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import kopf

from bunko.errors import BunkoError, Conflict, InvalidInput, Unavailable
from bunko.operator import catalogue, collection_data, kube, metrics, schemas
from bunko.operator.pipeline import EMBEDDING_ANNOTATION, write_status
from bunko.operator.status import condition, generation_of
from bunko.runtime import Runtime
from bunko.settings import Settings

PLURAL = "documentcollections"
RETRY_DELAY_S = 30
COUNT_INTERVAL_S = 60.0
REINDEX_POLL_S = 5.0

_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    """The operator's stores (from ``BUNKO_*``), opened on first use and shared by every handler."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(Settings())
        return _runtime


def close_runtime() -> None:
    global _runtime
    with _runtime_lock:
        if _runtime is not None and "vectors" in _runtime.__dict__:
            _runtime.vectors.close()
        _runtime = None


def refuse(
    body: kopf.Body, status: Mapping[str, Any] | None, patch: kopf.Patch, reason: str, message: str
) -> None:
    gen = generation_of(body)
    write_status(status, patch, {"phase": "Failed", "observedGeneration": gen,
                                 "conditions": [condition("Ready", False, reason, message, generation=gen)]})
    kopf.warn(body, reason=reason, message=message)
    raise kopf.PermanentError(message)


def wait(
    body: kopf.Body, status: Mapping[str, Any] | None, patch: kopf.Patch, reason: str, message: str
) -> None:
    """A dependency is missing or down: say so, and let kopf retry with a delay."""
    gen = generation_of(body)
    write_status(status, patch, {"phase": "Pending", "observedGeneration": gen,
                                 "conditions": [condition("Ready", False, reason, message, generation=gen)]})
    kopf.warn(body, reason=reason, message=message)
    raise kopf.TemporaryError(message, delay=RETRY_DELAY_S)


def embedding_of(pipeline: Mapping[str, Any]) -> tuple[str, int]:
    """The Pipeline's embedding model and its vector dimension."""
    try:
        emb = schemas.parse_pipeline(pipeline.get("spec") or {}).embedding
    except InvalidInput as exc:
        raise InvalidInput(f"Pipeline {pipeline['metadata']['name']} is invalid: {exc.message}") from exc
    return emb.model, catalogue.embedding_dim(emb.model, emb.dimension)


def reconcile(
    spec: kopf.Spec,
    name: str,
    namespace: str | None,
    uid: str,
    body: kopf.Body,
    status: kopf.Status,
    patch: kopf.Patch,
    **_: Any,
) -> None:
    """Make the stores match the spec and report it (every handler that reconciles calls this)."""
    assert namespace is not None
    with metrics.reconciling("DocumentCollection"):
        try:
            typed = schemas.parse_collection(spec)
            cfg = typed.config()
        except InvalidInput as exc:
            refuse(body, status, patch, "InvalidSpec", exc.message)
        ref = typed.pipeline_ref.name
        try:
            pipeline = kube.get_pipeline(namespace, ref)
            if pipeline is None:
                wait(
                    body,
                    status,
                    patch,
                    "PipelineNotFound",
                    f"Pipeline {namespace}/{ref} does not exist yet; create it or fix spec.pipelineRef",
                )
            assert pipeline is not None
            try:
                model, dim = embedding_of(pipeline)
            except InvalidInput as exc:
                wait(body, status, patch, "PipelineInvalid", exc.message)
            out = collection_data.reconcile(
                runtime(),
                name=name,
                uid=uid,
                pipeline=f"{namespace}/{ref}",
                model=model,
                dim=dim,
                cfg=cfg,
                description=typed.description,
                visibility=typed.access.visibility,
                roles=list(typed.access.roles),
                automatic=typed.reindex_policy == "Automatic",
            )
            docs, chunks = collection_data.counts(runtime(), out.collection_id)
        except Unavailable as exc:
            wait(body, status, patch, "StoreUnavailable", exc.message)
        except (InvalidInput, Conflict) as exc:
            refuse(body, status, patch, type(exc).__name__, exc.message)
        except BunkoError as exc:
            wait(body, status, patch, type(exc).__name__, exc.message)

        gen = generation_of(body)
        conditions = [
            condition("Ready", True, "Ready",
                      f"database row and object prefix ready; the first document indexed creates vector "
                      f"collection {out.vector_collection}", generation=gen)
        ]
        phase = "Ready"
        if out.action == "reindex-required":
            conditions.append(
                condition(
                    "ReindexRequired",
                    True,
                    "SpecChanged",
                    f"{'; '.join(out.changes)}: the {docs} documents keep their old chunks and vectors until "
                    "re-processed; set spec.reindexPolicy: Automatic (or reprocess them through the API)",
                    generation=gen,
                )
            )
            kopf.warn(body, reason="ReindexRequired", message="; ".join(out.changes))
        else:
            conditions.append(
                condition("ReindexRequired", False, "UpToDate", "chunks and vectors match the spec", generation=gen)
            )
        if out.action == "reindexing":
            phase = "Reindexing"
            kopf.info(
                body,
                reason="Reindexing",
                message=f"{'; '.join(out.changes)}: re-queued {out.requeued} documents",
            )
        elif out.action == "created":
            kopf.info(
                body,
                reason="Created",
                message=f"database row and object prefix created; vector collection {out.vector_collection} "
                f"({dim} dims, {cfg.index_type}) comes with the first document indexed",
            )
        metrics.COLLECTION_DOCUMENTS.labels(namespace, name).set(docs)
        desired: dict[str, Any] = {
            "phase": phase,
            "observedGeneration": gen,
            "collectionId": out.collection_id,
            "vectorCollection": out.vector_collection,
            "documentCount": docs,
            "chunkCount": chunks,
            "conditions": conditions,
        }
        if out.action != "reindex-required":
            desired.update(
                embeddingModel=model,
                embeddingDim=dim,
                indexedWith={
                    "embeddingModel": model,
                    "chunkSize": cfg.chunk_size,
                    "chunkOverlap": cfg.chunk_overlap,
                    "indexType": cfg.index_type,
                },
            )
        write_status(status, patch, desired)


# Registered by call rather than as decorators, so that `reconcile` keeps its plain signature for
# pipeline_embedding_changed to call; the id is the handler's name in kopf's progress annotations.
for _register in (
    kopf.on.resume(kube.GROUP, kube.VERSION, PLURAL, id="reconcile_collection"),
    kopf.on.create(kube.GROUP, kube.VERSION, PLURAL, id="reconcile_collection"),
    kopf.on.update(kube.GROUP, kube.VERSION, PLURAL, field="spec", id="reconcile_collection"),
):
    _register(reconcile)


# Not under kopf's own "bunko.dev/" prefix: kopf strips those from what it compares, so a change
# there would never reach a handler.
REINDEX_ANNOTATION = f"reindex.{kube.GROUP}/requested"


@kopf.on.field(kube.GROUP, kube.VERSION, PLURAL, field=["metadata", "annotations", EMBEDDING_ANNOTATION])
def pipeline_embedding_changed(
    new: Any, spec: kopf.Spec, name: str, namespace: str | None, uid: str, body: kopf.Body,
    status: kopf.Status, patch: kopf.Patch, **_: Any,
) -> None:
    """The Pipeline's embedding model changed (bunko.operator.pipeline.tell_collections): reconcile
    again, which sets ReindexRequired (reindexPolicy Manual) or re-queues every document (Automatic).

    kopf keeps annotations under its own domain (and its subdomains) out of the state it compares,
    so it calls this again at later events and on deletion: act only on a model the collection was
    not built with, and never on an object being deleted (the finalizer handler owns that)."""
    if not new or body.get("metadata", {}).get("deletionTimestamp"):
        return
    if new != status.get("embeddingModel"):
        reconcile(spec, name, namespace, uid, body, status, patch)


@kopf.on.field(kube.GROUP, kube.VERSION, PLURAL, field=["metadata", "annotations", REINDEX_ANNOTATION])
def reindex_requested(
    old: Any, new: Any, body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **_: Any
) -> None:
    """``kubectl annotate documentcollection NAME reindex.bunko.dev/requested=$(date +%s) --overwrite``:
    queue the rebuild of the index with the current recipe and embedding model from the stored pages
    (the collection keeps answering meanwhile). A worker runs it (the text analysis and the
    embedding client are the workers'); ``follow_reindex`` reports the outcome. A new value asks
    again; removing it asks nothing."""
    # Compared with what was last acted on, not with kopf's `old` (see pipeline_embedding_changed).
    if not new or new == old or str(new) in (status.get("reindexedFor"), status.get("reindexRequested")):
        return
    if body.get("metadata", {}).get("deletionTimestamp"):
        return
    cid = status.get("collectionId")
    if not cid:
        raise kopf.TemporaryError("the collection is not created yet; its reindex is queued once it is",
                                  delay=RETRY_DELAY_S)
    try:
        job_id = collection_data.queue_reindex(runtime(), str(cid))
    except BunkoError as exc:  # a store down, or the row not there yet: ask again later
        raise kopf.TemporaryError(exc.message, delay=RETRY_DELAY_S) from exc
    kopf.info(body, reason="ReindexQueued",
              message=f"job {job_id}: a worker rebuilds the index from the stored pages")
    write_status(status, patch, {"phase": "Reindexing", "reindexRequested": str(new), "reindexJob": job_id})


def _reindex_pending(status: Mapping[str, Any]) -> bool:
    return bool(status.get("reindexRequested")) and status.get("reindexRequested") != status.get("reindexedFor")


@kopf.timer(kube.GROUP, kube.VERSION, PLURAL, interval=REINDEX_POLL_S, initial_delay=REINDEX_POLL_S)
def follow_reindex(
    status: kopf.Status, patch: kopf.Patch, body: kopf.Body, **_: Any
) -> None:
    """Report a queued reindex once its job is over: the new index version, or why it failed (the
    old index then keeps answering)."""
    if not status or not _reindex_pending(status) or not status.get("reindexJob"):
        return
    try:
        state = collection_data.reindex_state(runtime(), str(status.get("collectionId")), int(status["reindexJob"]))
    except Unavailable:
        return  # the next tick asks again
    if state is None or state.status in ("queued", "running"):
        return
    requested = str(status["reindexRequested"])
    if state.status != "done":  # failed, or its job row is gone: not a rebuild to report as made
        message = f"the reindex failed; the previous index keeps answering: {state.error or 'its job is gone'}"
        kopf.warn(body, reason="ReindexFailed", message=message)
        cond = condition("Reindexed", False, "ReindexFailed", message, generation=generation_of(body))
    else:
        message = f"index version {state.index_version} in {state.vector_collection}"
        kopf.info(body, reason="Reindexed", message=message)
        cond = condition("Reindexed", True, "Reindexed", message, generation=generation_of(body))
    write_status(status, patch, {"phase": "Ready", "reindexedFor": requested, "indexVersion": state.index_version,
                                 "vectorCollection": state.vector_collection, "conditions": [cond]})


@kopf.timer(kube.GROUP, kube.VERSION, PLURAL, interval=COUNT_INTERVAL_S, initial_delay=COUNT_INTERVAL_S)
def refresh_counts(
    status: kopf.Status, patch: kopf.Patch, name: str, namespace: str | None, **_: Any
) -> None:
    cid = status.get("collectionId") if status else None
    if not cid:
        return
    try:
        docs, chunks = collection_data.counts(runtime(), str(cid))
    except Unavailable:
        return  # the next tick tries again
    metrics.COLLECTION_DOCUMENTS.labels(namespace or "", name).set(docs)
    desired: dict[str, Any] = {"documentCount": docs, "chunkCount": chunks}
    if (status.get("phase") == "Reindexing" and not _reindex_pending(status)
            and not collection_data.in_progress(runtime(), str(cid))):
        desired["phase"] = "Ready"  # every re-queued document has been processed again
    write_status(status, patch, desired)


@kopf.on.delete(kube.GROUP, kube.VERSION, PLURAL)
def delete_collection(
    spec: kopf.Spec, name: str, uid: str, body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **_: Any
) -> None:
    try:
        retain = schemas.parse_collection(spec).deletion_policy == "Retain"
    except InvalidInput:  # a spec that never became valid made nothing that Retain could keep
        retain = spec.get("deletionPolicy") == "Retain"
    if retain:
        kopf.info(body, reason="Retained", message="deletionPolicy Retain: vectors, objects and rows kept")
        return
    with metrics.reconciling("DocumentCollectionDelete"):
        try:
            removed = collection_data.remove(runtime(), name=name, uid=uid)
        except Unavailable as exc:
            # Deleting until the stores answer: the finalizer holds the object (kubectl shows why);
            # see the README for removing the finalizer when the operator itself is gone.
            write_status(status, patch, {"phase": "Deleting", "conditions": [
                condition("Ready", False, "StoreUnavailable", f"waiting to delete: {exc.message}")]})
            raise kopf.TemporaryError(exc.message, delay=RETRY_DELAY_S) from exc
    if removed:
        kopf.info(body, reason="Deleted", message="objects and database rows removed; a worker drops the vectors")

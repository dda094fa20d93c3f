"""Collections: list the ones a user may read, create them (admins: configuration)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from bunko import audit
from bunko import collections as colls
from bunko.access import can_read_collection
from bunko.api.deps import CollectionManager, CollectionReader, RuntimeDep, client_ip
from bunko.api.schemas import (
    CollectionCreate,
    CollectionOut,
    PiiPageOut,
    PiiPolicyIn,
    PiiPolicyOut,
    PiiReportOut,
    ReindexOut,
)
from bunko.store.db import Collection

router = APIRouter(prefix="/api/v1/collections", tags=["collections"])


def collection_out(c: Collection, count: int | None = None) -> CollectionOut:
    return CollectionOut(id=c.id, name=c.name, description=c.description,
                         embedding_model=c.embedding_model, embedding_dim=c.embedding_dim,
                         visibility=c.visibility, allowed_roles=list(c.allowed_roles or []),
                         config=dict(c.config or {}), document_count=count, created_at=c.created_at)


def readable_collection(rt: RuntimeDep, user: CollectionReader, name: str) -> Collection:
    """The collection, or 404 — also when it exists but this user may not see it (the core's rule)."""
    return colls.readable_collection(rt, user.principal, name)


@router.get("", response_model=list[CollectionOut])
def list_collections(user: CollectionReader, rt: RuntimeDep) -> list[CollectionOut]:
    return [collection_out(c, n) for c, n in colls.list_collections(rt)
            if can_read_collection(user.principal, c)]


@router.post("", response_model=CollectionOut, status_code=201)
def create_collection(body: CollectionCreate, admin: CollectionManager, rt: RuntimeDep,
                      request: Request) -> CollectionOut:
    coll = colls.create_collection(rt, body.name, description=body.description, config=body.config,
                                   visibility=body.visibility, allowed_roles=body.allowed_roles)
    audit.record(rt, "collection_create", actor=admin.id, target=coll.id,
                 detail={"name": coll.name}, ip=client_ip(request))
    return collection_out(coll, 0)


@router.get("/{collection}", response_model=CollectionOut)
def get_collection(collection: str, user: CollectionReader, rt: RuntimeDep) -> CollectionOut:
    return collection_out(readable_collection(rt, user, collection))


@router.post("/{collection}/reindex", response_model=ReindexOut)
def reindex_collection(collection: str, admin: CollectionManager, rt: RuntimeDep, request: Request,
                       force: bool = False) -> ReindexOut:
    """Rebuild the collection's index with the current recipe and embedding model, from its stored
    pages; it keeps answering meanwhile (the call returns when the new index is live)."""
    from bunko.ingest.reindex import reindex_collection as rebuild

    coll = colls.get_collection(rt, collection)
    report = rebuild(rt, coll.name, force=force)
    audit.record(rt, "collection_reindex", actor=admin.id, target=coll.id,
                 detail={"name": coll.name, "from": report.from_version, "to": report.to_version,
                         "documents": report.documents}, ip=client_ip(request))
    return ReindexOut(collection=report.collection, from_version=report.from_version,
                      to_version=report.to_version, documents=report.documents, chunks=report.chunks,
                      requeued=report.requeued, seconds=report.seconds, changes=report.changes)


@router.get("/{collection}/pii", response_model=PiiReportOut)
def pii_report(collection: str, admin: CollectionManager, rt: RuntimeDep) -> PiiReportOut:
    """What personal information each page holds (kinds and counts; values never leave the PDF),
    for a collection whose PII policy is flag or redact."""
    from bunko.ingest.privacy import findings_report

    report = findings_report(rt, collection)
    return PiiReportOut(collection=report.collection, policy=report.policy, totals=report.totals,
                        pages=[PiiPageOut(document_id=p.document_id, filename=p.filename, page=p.page_no,
                                          counts=p.counts, redacted=p.redacted) for p in report.pages])


@router.put("/{collection}/pii", response_model=PiiPolicyOut)
def set_pii_policy(collection: str, body: PiiPolicyIn, admin: CollectionManager, rt: RuntimeDep,
                   request: Request) -> PiiPolicyOut:
    """Set the collection's PII policy; every document is processed again under it."""
    from bunko.ingest.privacy import set_pii_policy as apply

    change = apply(rt, collection, body.policy)
    audit.record(rt, "collection_pii_policy", actor=admin.id, target=change.collection_id,
                 detail={"name": change.collection, "from": change.old, "to": change.new,
                         "requeued": change.requeued}, ip=client_ip(request))
    return PiiPolicyOut(collection=change.collection, previous=change.old, policy=change.new,
                        requeued=change.requeued)

"""Taking a PDF in, and the document lifecycle around it (reprocess, delete, look up).

Order on submission (ARCHITECTURE.md §5): validate → duplicate check → raw file to the object store
→ document row + job in ONE transaction. A failure after the upload removes the object again, so
there is never a row without its file nor a queued job without its row.

The duplicate check is a side channel unless it answers only what the uploader may already know:
a file already in the collection is refused (409, with the match's id and name) only when the
uploader may read that match. Otherwise the upload becomes the uploader's own document, processed
like any other, and neither the answer nor the work done differs from a first upload.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from bunko.access import can_read_document, validate_visibility
from bunko.collections import get_collection
from bunko.domain import DocumentStatus, Principal, Role, Visibility
from bunko.errors import DuplicateDocument, InvalidInput, NotFound
from bunko.ingest import jobs
from bunko.store import keys
from bunko.store.db import Chunk, Document, Job, Page, PiiFinding, new_id
from bunko.store.objects import delete_document_objects

if TYPE_CHECKING:
    from bunko.runtime import Runtime

MAX_TAGS = 32


def submit_document(
    rt: Runtime,
    *,
    collection: str,
    path: Path,
    filename: str,
    owner_id: str,
    visibility: str = Visibility.collection.value,
    allowed_roles: Iterable[str] = (),
    tags: Iterable[str] = (),
    title: str | None = None,
    uploader: Principal | None = None,
) -> Document:
    """Queue ``path`` as a new document of ``collection`` owned by ``owner_id``.

    ``uploader`` is whose read rights decide what a duplicate reveals (the API passes the caller);
    without it the upload acts with an admin's sight, as the local CLI does.
    """
    uploader = uploader or Principal(user_id=owner_id, role=Role.admin.value)
    visibility, roles = validate_visibility(visibility, allowed_roles)
    tag_list = _check_tags(tags)
    coll = get_collection(rt, collection)
    # Here, not at the top: the operator re-queues documents through this module and never opens a
    # PDF (its image has no PDF engine).
    from bunko.ingest.validate import validate_pdf

    info = validate_pdf(path, max_bytes=rt.settings.max_upload_bytes, max_pages=rt.settings.max_pages,
                        sandbox=rt.settings.sandbox)
    _refuse_duplicate(rt, coll.id, info.sha256, filename, uploader)

    doc_id = new_id()
    key = keys.raw_pdf(coll.id, doc_id)
    rt.objects.put_file(key, path, content_type="application/pdf")
    try:
        with rt.sessions.begin() as s:
            doc = Document(
                id=doc_id,
                collection_id=coll.id,
                title=(title or info.title or Path(filename).stem)[:512],
                filename=Path(filename).name[:512],
                sha256=info.sha256,
                size_bytes=info.size_bytes,
                page_count=info.page_count,
                status=DocumentStatus.pending.value,
                stage="queued",
                owner_id=owner_id,
                visibility=visibility,
                allowed_roles=roles,
                tags=tag_list,
                raw_key=key,
            )
            s.add(doc)
            s.flush()
            jobs.enqueue(s, doc_id)
    except IntegrityError:
        rt.objects.delete(key)
        # A concurrent upload of the same file by the same owner (the only unique clash left).
        _refuse_duplicate(rt, coll.id, info.sha256, filename, uploader)
        raise
    except BaseException:
        rt.objects.delete(key)
        raise
    return doc


def reprocess_document(rt: Runtime, document_id: str) -> Document:
    with rt.sessions.begin() as s:
        doc = s.get(Document, document_id)
        if doc is None:
            raise NotFound(f"document {document_id} does not exist")
        doc.status = DocumentStatus.pending.value
        doc.stage = "queued"
        doc.progress = 0.0
        doc.error = None
        doc.error_code = None
        jobs.requeue(s, document_id)
    return doc


def delete_document(rt: Runtime, document_id: str) -> None:
    """Remove a document everywhere: vectors, objects, rows, and the collection's cached answers."""
    with rt.sessions() as s:
        doc = s.get(Document, document_id)
        if doc is None:
            raise NotFound(f"document {document_id} does not exist")
        coll = doc.collection
        vname, coll_id, key = coll.vector_collection, coll.id, doc.raw_key
    # Vectors first: once they are gone the document can no longer appear in answers, whatever
    # happens to the remaining steps (which a retry of the delete completes).
    if rt.vectors.has(vname):
        rt.vectors.delete_document(vname, document_id)
    delete_document_objects(rt.objects, coll_id, document_id, raw_key=key)
    with rt.sessions.begin() as s:
        s.execute(delete(Job).where(Job.document_id == document_id))
        s.execute(delete(Chunk).where(Chunk.document_id == document_id))
        s.execute(delete(Page).where(Page.document_id == document_id))
        s.execute(delete(PiiFinding).where(PiiFinding.document_id == document_id))
        s.execute(delete(Document).where(Document.id == document_id))
    rt.cache.bump(f"collection:{coll_id}")


def get_document(rt: Runtime, document_id: str) -> Document:
    with rt.sessions() as s:
        doc = s.get(Document, document_id)
        if doc is None:
            raise NotFound(f"document {document_id} does not exist")
        _ = doc.pages  # load while the session is open
        return doc


def list_documents(
    rt: Runtime,
    *,
    collection: str | None = None,
    status: str | None = None,
    owner_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Document], int]:
    """A page of documents, newest first, and the total matching count."""
    if not 1 <= limit <= 500 or offset < 0:
        raise InvalidInput("limit must be 1..500 and offset ≥ 0")
    if status is not None and status not in {st.value for st in DocumentStatus}:
        raise InvalidInput(f"unknown status {status!r}; one of {[st.value for st in DocumentStatus]}")
    q = select(Document)
    if collection is not None:
        q = q.where(Document.collection_id == get_collection(rt, collection).id)
    if status is not None:
        q = q.where(Document.status == status)
    if owner_id is not None:
        q = q.where(Document.owner_id == owner_id)
    with rt.sessions() as s:
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        docs = list(s.scalars(q.order_by(Document.created_at.desc(), Document.id).limit(limit).offset(offset)))
    return docs, int(total)


def _refuse_duplicate(rt: Runtime, collection_id: str, sha256: str, filename: str,
                      uploader: Principal) -> None:
    """Refuse the upload when the uploader may read a document of the collection with the same bytes."""
    with rt.sessions() as s:
        matches = list(s.scalars(
            select(Document)
            .where(Document.collection_id == collection_id, Document.sha256 == sha256)
            .order_by(Document.created_at, Document.id)
        ))
    # Their own copy first: with it the message names the document they are most likely after.
    matches.sort(key=lambda d: d.owner_id != uploader.user_id)
    existing = next((d for d in matches if can_read_document(uploader, d)), None)
    if existing is not None:
        raise DuplicateDocument(
            f"{filename!r} is already in this collection as document {existing.id} "
            f"({existing.filename!r}, status {existing.status}); delete it or reprocess it instead",
            existing_id=existing.id,
        )


def _check_tags(tags: Iterable[str]) -> list[str]:
    out = [t.strip() for t in tags if t.strip()]
    if len(out) > MAX_TAGS or any(len(t) > 64 for t in out):
        raise InvalidInput(f"at most {MAX_TAGS} tags of at most 64 characters each")
    return list(dict.fromkeys(out))

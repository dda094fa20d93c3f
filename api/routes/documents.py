"""Documents: upload into a collection, list, look at one, its pages (text, blocks, a rendered
image), thumbnail and original, delete and reprocess. Who may do what is ``bunko.access``; the
work is ``bunko.ingest.submit`` and ``bunko.ingest.page_view``.

The router is built per app (:func:`build_router`) because the upload route's body limit comes
from the settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from bunko import audit
from bunko import collections as colls
from bunko.access import (
    Permission,
    can_manage_document,
    can_read_collection,
    can_read_document,
    has_permission,
    list_visible_documents,
)
from bunko.api.deps import CurrentUser, Lister, RuntimeDep, Uploader, UserDep, client_ip
from bunko.api.routes.collections import readable_collection
from bunko.api.schemas import DocumentList, DocumentOut, PageBlockOut, PageOut, PageSummary
from bunko.api.uploads import clamd_scan, receive_pdf
from bunko.domain import DocumentStatus
from bunko.errors import Conflict, InfectedDocument, NotFound, PermissionDenied, Unavailable
from bunko.ingest import page_view, submit
from bunko.runtime import Runtime
from bunko.settings import Settings
from bunko.store import keys
from bunko.store.db import Document

log = logging.getLogger(__name__)

StatusName = Annotated[str | None, Query(pattern="^(pending|processing|completed|failed)$")]

_UPLOAD_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "the PDF"},
                "visibility": {"type": "string", "enum": ["private", "collection", "roles"],
                               "default": "collection"},
                "allowed_roles": {"type": "array",
                                  "items": {"type": "string",
                                            "enum": ["admin", "power_user", "user", "viewer"]}},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 64}},
                "title": {"type": "string", "maxLength": 512},
            },
        }}},
    },
}


def document_out(doc: Document, *, with_pages: bool = False) -> DocumentOut:
    pages = None
    if with_pages:
        pages = [PageSummary(page=p.page_no, source=p.source, confidence=p.confidence,
                             char_count=p.char_count) for p in doc.pages]
    return DocumentOut(
        id=doc.id, collection_id=doc.collection_id, title=doc.title, filename=doc.filename,
        sha256=doc.sha256, size_bytes=doc.size_bytes, page_count=doc.page_count, status=doc.status,
        stage=doc.stage, progress=doc.progress, error=doc.error, error_code=doc.error_code,
        chunk_count=doc.chunk_count, owner_id=doc.owner_id, visibility=doc.visibility,
        allowed_roles=list(doc.allowed_roles or []), tags=list(doc.tags or []),
        created_at=doc.created_at, updated_at=doc.updated_at, completed_at=doc.completed_at,
        pages=pages,
    )


def readable_document(rt: Runtime, user: CurrentUser, document_id: str) -> Document:
    """The document, or 404 — also when it exists but this user may not read it."""
    try:
        doc = submit.get_document(rt, document_id)
    except NotFound:
        raise NotFound(f"document {document_id} does not exist") from None
    if has_permission(user.role, Permission.documents_read_all):
        return doc
    # The collection's visibility comes first, as it does for questions (bunko.qa).
    if not can_read_document(user.principal, doc) or not can_read_collection(
            user.principal, colls.get_collection(rt, doc.collection_id)):
        raise NotFound(f"document {document_id} does not exist")
    return doc


def manageable_document(rt: Runtime, user: CurrentUser, document_id: str) -> Document:
    doc = readable_document(rt, user, document_id)
    if not can_manage_document(user.principal, doc):
        raise PermissionDenied("only the document's owner or an admin may change or delete it")
    return doc


def _attachment(filename: str, disposition: str = "attachment") -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "")
    return f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def _object_response(rt: Runtime, key: str, media_type: str, disposition: str, *,
                     redirect: bool) -> Response:
    """The object's bytes streamed through the api, or (``redirect``, S3 only) a presigned redirect.

    Only downloads redirect: the page fetches images with its access token and shows them as blob
    URLs, and a fetch that is redirected to the object store's origin is refused by the page's
    Content-Security-Policy (``connect-src 'self'``) and by CORS. Thumbnails and page images are
    small, so streaming them costs little."""
    if not rt.objects.exists(key):
        raise NotFound("this file is not available (yet); check the document's status")
    url = rt.objects.presigned_url(key, expires_s=300) if redirect else None
    if url:
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    chunks: Iterator[bytes] = rt.objects.iter_chunks(key)
    return StreamingResponse(chunks, media_type=media_type,
                             headers={"Content-Disposition": disposition,
                                      "Cache-Control": "private, max-age=300"})


async def _scan(rt: Runtime, request: Request, actor: str, collection: str, filename: str,
                path: FilePath) -> None:
    """clamd's verdict on an upload, before anything of it is stored. A signature found: refused
    (422 ``infected``) with an audit entry. clamd unreachable: refused (503), or, with
    ``clamd_fail_open``, accepted unscanned, logged and audited as such."""
    settings = rt.settings
    try:
        await run_in_threadpool(clamd_scan, settings.clamd_url, path, timeout_s=settings.clamd_timeout_s)
    except InfectedDocument as exc:
        infected = {"collection": collection, "filename": filename,
                    "signature": (exc.detail or {}).get("signature", "")}
        await run_in_threadpool(lambda: audit.record(rt, "upload_infected", actor=actor, detail=infected,
                                                     ip=client_ip(request)))
        raise
    except Unavailable as exc:
        if not settings.clamd_fail_open:
            raise
        unscanned = {"collection": collection, "filename": filename, "reason": exc.message}
        log.warning("upload.unscanned collection=%s filename=%r reason=%s", collection, filename, exc.message)
        await run_in_threadpool(lambda: audit.record(rt, "upload_unscanned", actor=actor, detail=unscanned,
                                                     ip=client_ip(request)))


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(tags=["documents"])

    @router.post("/api/v1/collections/{collection}/documents", response_model=DocumentOut,
                 status_code=201, openapi_extra=_UPLOAD_SCHEMA,
                 responses={409: {"description": "duplicate"}, 413: {"description": "too large"},
                            415: {"description": "not a PDF"}, 422: {"description": "invalid PDF"}})
    async def upload_document(collection: str, request: Request, user: Uploader,
                              rt: RuntimeDep) -> DocumentOut:
        coll = await run_in_threadpool(readable_collection, rt, user, collection)
        received = await receive_pdf(request, max_bytes=rt.settings.max_upload_bytes,
                                     tmp_dir=rt.settings.data_dir / "tmp")
        try:
            if rt.settings.clamd_url:
                await _scan(rt, request, user.id, coll.name, received.filename, received.path)
            doc = await run_in_threadpool(
                lambda: submit.submit_document(
                    rt, collection=coll.name, path=received.path, filename=received.filename,
                    owner_id=user.id, visibility=received.visibility,
                    allowed_roles=received.allowed_roles, tags=received.tags, title=received.title,
                    uploader=user.principal))
        finally:
            received.discard()
        await run_in_threadpool(
            lambda: audit.record(rt, "upload", actor=user.id, target=doc.id,
                                 detail={"collection": coll.name, "filename": doc.filename,
                                         "size_bytes": doc.size_bytes}, ip=client_ip(request)))
        return document_out(doc)

    @router.get("/api/v1/collections/{collection}/documents", response_model=DocumentList)
    def list_documents(
        collection: str, user: Lister, rt: RuntimeDep, status: StatusName = None,
        owner: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> DocumentList:
        coll = readable_collection(rt, user, collection)
        docs, total = list_visible_documents(rt, user.principal, collection_id=coll.id, status=status,
                                             owner_id=owner, limit=limit, offset=offset)
        return DocumentList(items=[document_out(d) for d in docs], total=total, limit=limit,
                            offset=offset)

    @router.get("/api/v1/documents/{document_id}", response_model=DocumentOut)
    def get_document(document_id: str, user: UserDep, rt: RuntimeDep) -> DocumentOut:
        return document_out(readable_document(rt, user, document_id), with_pages=True)

    @router.delete("/api/v1/documents/{document_id}", status_code=204)
    def delete_document(document_id: str, user: UserDep, rt: RuntimeDep, request: Request) -> None:
        doc = manageable_document(rt, user, document_id)
        submit.delete_document(rt, doc.id)
        audit.record(rt, "delete", actor=user.id, target=doc.id,
                     detail={"filename": doc.filename, "collection_id": doc.collection_id},
                     ip=client_ip(request))

    @router.post("/api/v1/documents/{document_id}/reprocess", response_model=DocumentOut,
                 status_code=202)
    def reprocess_document(document_id: str, user: UserDep, rt: RuntimeDep,
                           request: Request) -> DocumentOut:
        doc = manageable_document(rt, user, document_id)
        if doc.status == DocumentStatus.processing.value:
            raise Conflict("the document is being processed now; reprocess it when that ends")
        updated = submit.reprocess_document(rt, doc.id)
        audit.record(rt, "reprocess", actor=user.id, target=doc.id, ip=client_ip(request))
        return document_out(updated)

    @router.get("/api/v1/documents/{document_id}/pages/{page}", response_model=PageOut)
    def get_page(document_id: str, page: Annotated[int, Path(ge=1, le=100_000)], user: UserDep,
                 rt: RuntimeDep) -> PageOut:
        doc = readable_document(rt, user, document_id)
        found = next((p for p in doc.pages if p.page_no == page), None)
        if found is None:
            raise NotFound(f"page {page} of document {document_id} is not available "
                           f"(it has {doc.page_count} pages; status {doc.status})")
        markdown = found.markdown
        if not markdown and found.markdown_key:
            raw = rt.objects.get_or_none(found.markdown_key)
            markdown = raw.decode("utf-8", "replace") if raw else ""
        blocks = [PageBlockOut(text=b.text, bbox=b.bbox, confidence=b.confidence, kind=b.kind,
                               redacted=b.redacted)
                  for b in page_view.page_blocks(rt, found)]
        return PageOut(document_id=doc.id, page=found.page_no, source=found.source,
                       confidence=found.confidence, markdown=markdown, width_pt=found.width_pt,
                       height_pt=found.height_pt, blocks=blocks)

    @router.get("/api/v1/documents/{document_id}/pages/{page}/image",
                responses={200: {"content": {"image/png": {}}}}, response_class=Response)
    def get_page_image(document_id: str, page: Annotated[int, Path(ge=1, le=100_000)], user: UserDep,
                       rt: RuntimeDep) -> Response:
        doc = readable_document(rt, user, document_id)
        png = page_view.page_image_png(rt, doc, page)
        return Response(png, media_type="image/png",
                        headers={"Content-Disposition": _attachment(f"{doc.id}-{page}.png", "inline"),
                                 "Cache-Control": "private, max-age=300"})

    @router.get("/api/v1/documents/{document_id}/thumbnail",
                responses={200: {"content": {"image/png": {}}}})
    def get_thumbnail(document_id: str, user: UserDep, rt: RuntimeDep) -> Response:
        doc = readable_document(rt, user, document_id)
        return _object_response(rt, keys.thumbnail(doc.id), "image/png",
                                _attachment(f"{doc.id}.png", "inline"), redirect=False)

    @router.get("/api/v1/documents/{document_id}/original",
                responses={200: {"content": {"application/pdf": {}}},
                           307: {"description": "presigned"}})
    def get_original(document_id: str, user: UserDep, rt: RuntimeDep) -> Response:
        doc = readable_document(rt, user, document_id)
        if not doc.raw_key:
            raise NotFound("the original file of this document is not stored")
        return _object_response(rt, doc.raw_key, "application/pdf", _attachment(doc.filename),
                                redirect=True)

    return router

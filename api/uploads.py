"""Receiving an upload: the multipart body streamed to a temp file with a running size check,
content-type and magic checks, and the optional clamd scan — all before anything is stored.

The route's own body limit (``max_upload_bytes`` + room for the form fields) stops an oversized
request while it streams (413), and the file part is counted again as it is copied, so the limit
holds even for a chunked request with no Content-Length.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from bunko.errors import DocumentTooLarge, EmptyPdf, InfectedDocument, InvalidInput, NotAPdf, Unavailable

FORM_SLACK_BYTES = 1 << 20  # multipart framing and the small form fields
_ACCEPTED_TYPES = {"application/pdf", "application/x-pdf", "application/octet-stream", ""}
_COPY_CHUNK = 1 << 20


@dataclass
class ReceivedUpload:
    path: Path
    filename: str
    visibility: str
    allowed_roles: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    title: str | None = None

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _split(values: list[str]) -> list[str]:
    """Repeated form fields and comma-separated lists both work (``tags=a&tags=b`` or ``a,b``)."""
    return [v.strip() for raw in values for v in raw.split(",") if v.strip()]


async def receive_pdf(request: Request, *, max_bytes: int, tmp_dir: Path) -> ReceivedUpload:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes + FORM_SLACK_BYTES:
        raise DocumentTooLarge(_too_large(max_bytes), detail={"max_bytes": max_bytes})
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput("send the PDF as multipart/form-data with the file in the field 'file'")
    try:
        form = await request.form(max_files=1, max_fields=32, max_part_size=64 * 1024)
    except HTTPException as exc:
        if exc.status_code == 413:  # the route's running body limit tripped while streaming
            raise DocumentTooLarge(_too_large(max_bytes), detail={"max_bytes": max_bytes}) from None
        raise
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("the form has no file in the field 'file'")
        declared = (upload.content_type or "").split(";")[0].strip().lower()
        if declared not in _ACCEPTED_TYPES:
            raise NotAPdf(f"only PDF files are accepted (the file was sent as {declared!r})",
                          detail={"content_type": declared})
        path = await _copy(upload, max_bytes=max_bytes, tmp_dir=tmp_dir)
        try:
            visibility = str(form.get("visibility") or "collection")
            title = form.get("title")
            return ReceivedUpload(
                path=path,
                filename=os.path.basename(upload.filename or "document.pdf")[:255] or "document.pdf",
                visibility=visibility,
                allowed_roles=_split([str(v) for v in form.getlist("allowed_roles")]),
                tags=_split([str(v) for v in form.getlist("tags")]),
                title=str(title)[:512] if isinstance(title, str) and title.strip() else None,
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    finally:
        await form.close()


async def _copy(upload: UploadFile, *, max_bytes: int, tmp_dir: Path) -> Path:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".pdf", dir=tmp_dir)
    path = Path(name)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            head = b""
            while chunk := await upload.read(_COPY_CHUNK):
                if len(head) < 1024:
                    head += chunk[: 1024 - len(head)]
                size += len(chunk)
                if size > max_bytes:
                    raise DocumentTooLarge(_too_large(max_bytes), detail={"max_bytes": max_bytes})
                out.write(chunk)
        if size == 0:
            raise EmptyPdf("the uploaded file is empty (0 bytes)")
        # The PDF header may follow up to 1 KiB of junk (ISO 32000-1 §7.5.2 implementations allow it).
        if b"%PDF-" not in head:
            raise NotAPdf("this file is not a PDF (no %PDF- header); only PDF files are accepted")
        return path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _too_large(max_bytes: int) -> str:
    return (f"the file is larger than the upload limit of {max_bytes / 1048576:.1f} MiB "
            f"({max_bytes} bytes); split it or ask an admin to raise BUNKO_MAX_UPLOAD_BYTES")


# --- clamd --------------------------------------------------------------------------------------


def clamd_scan(url: str, path: Path, *, timeout_s: float = 60.0) -> None:
    """Scan a file with clamd's INSTREAM command over TCP (``tcp://host:3310``).

    Raises ``InfectedDocument`` when a signature is found and ``Unavailable`` when clamd cannot be
    asked (the caller decides whether an unscanned file may pass: ``clamd_fail_open``).
    """
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 3310
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock, path.open("rb") as f:
            sock.sendall(b"zINSTREAM\0")
            while chunk := f.read(64 * 1024):
                sock.sendall(struct.pack(">I", len(chunk)) + chunk)
            sock.sendall(struct.pack(">I", 0))
            reply = b""
            while not reply.endswith(b"\0"):
                part = sock.recv(4096)
                if not part:
                    break
                reply += part
    except OSError as exc:
        raise Unavailable(f"the virus scanner (clamd at {host}:{port}) is unreachable: {exc}") from exc
    text = reply.rstrip(b"\0").decode("utf-8", "replace")
    if text.endswith("FOUND"):
        signature = text.split(":", 1)[-1].removesuffix("FOUND").strip()
        raise InfectedDocument(f"the virus scanner found {signature} in this file; it was not stored",
                               detail={"signature": signature})
    if not text.endswith("OK"):
        raise Unavailable(f"the virus scanner gave an unexpected answer: {text[:200]!r}")

"""Is an uploaded file a PDF Bunko can take? Checked before anything is stored.

Order: size (cheap, no read), empty, ``%PDF-`` magic, then a parse in the sandbox (a hostile file
can hang or balloon the parser): damaged, encrypted, no pages, too many pages. Each refusal is its
own error type with a message that says what was wrong and what to do.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from bunko.errors import DocumentTooLarge, EmptyPdf, NotAPdf, TooManyPages
from bunko.ingest.pdf_child import DocInfo, child_open
from bunko.ingest.sandbox import run_sandboxed
from bunko.ingest.types import PdfInfo
from bunko.settings import SandboxLimits, Settings

MAGIC_WINDOW = 1024  # the PDF spec lets the header sit anywhere in the first 1024 bytes

log = logging.getLogger(__name__)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def validate_pdf(
    path: Path, *, max_bytes: int, max_pages: int, sandbox: SandboxLimits | None = None
) -> PdfInfo:
    """Check ``path`` and describe it, or raise the :class:`InvalidDocument` subclass that says why
    not, opening it under the ``sandbox`` limits (the settings' defaults when omitted)."""
    path = Path(path)
    limits = sandbox or Settings(_env_file=None).sandbox  # type: ignore[call-arg]
    size = path.stat().st_size
    if size > max_bytes:
        raise DocumentTooLarge(
            f"the file is {_mb(size)}, over the {_mb(max_bytes)} limit (BUNKO_MAX_UPLOAD_BYTES); "
            "split it into smaller PDFs or compress its images."
        )
    if size == 0:
        raise EmptyPdf("the file is empty (0 bytes); the upload may have been cut off. Upload it again.")
    with path.open("rb") as f:
        head = f.read(MAGIC_WINDOW)
    if b"%PDF-" not in head:
        raise NotAPdf(
            "the file is not a PDF (no %PDF- header in its first 1024 bytes); Bunko ingests PDF files "
            "only. Convert it to PDF first."
        )
    info: DocInfo = run_sandboxed(
        child_open,
        str(path),
        memory_mb=limits.memory_mb,
        timeout_s=limits.page_timeout_s,
        what="opening the PDF",
    )
    if info.security_revision != -1:
        # It opened without a password, so only an owner password is set ("permissions"): every
        # reader opens such a file and shows its text, and so does Bunko. A user password is
        # refused where the file is opened (bunko.ingest.pdf), since no one can read it without it.
        log.info("the PDF carries an owner password only (security handler revision %d): ingested",
                 info.security_revision)
    if info.page_count == 0:
        raise EmptyPdf("the PDF has no pages; there is nothing to read. Check the export settings.")
    if info.page_count > max_pages:
        raise TooManyPages(
            f"the PDF has {info.page_count} pages, over the limit of {max_pages} (BUNKO_MAX_PAGES); "
            "split it into parts."
        )
    return PdfInfo(
        sha256=sha256_file(path),
        size_bytes=size,
        page_count=info.page_count,
        title=info.title or path.stem,
    )

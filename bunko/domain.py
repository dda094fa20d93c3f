"""The shared vocabulary at the bottom of the core: who is asking, what a document may be, what
extraction and chunking hand on, and what a search finds. Everything may import it; it imports
nothing of Bunko's (the import linter's ``layers`` contract keeps it so), so no arrow runs up from
the stores to retrieval, from the ACL to the ORM, or from text processing to ingestion.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

# The four models a pipeline serves, in the one order every listing uses (spec, plan, Serve apps).
ModelRole = Literal["ocr", "embedding", "reranker", "llm"]
MODEL_ROLES: tuple[ModelRole, ...] = ("ocr", "embedding", "reranker", "llm")
# Where each role answers under its server's base URL: Serve's route prefixes and the HTTP clients' paths.
MODEL_ROUTES: dict[ModelRole, str] = {"ocr": "/ocr", "embedding": "/embed", "reranker": "/rerank", "llm": "/llm"}


class DocumentStatus(enum.StrEnum):
    pending = "pending"
    processing = "processing"
    completed = "completed"
    failed = "failed"


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class Visibility(enum.StrEnum):
    private = "private"  # owner (and admins) only
    collection = "collection"  # everyone who may read the collection
    roles = "roles"  # the roles listed in allowed_roles, plus the owner


class Role(enum.StrEnum):
    admin = "admin"
    power_user = "power_user"
    user = "user"
    viewer = "viewer"


@dataclass(frozen=True)
class Principal:
    """Who is asking. ``role`` is a :class:`Role` value. The ACL filter in the vector
    search is built from this, so it must come from an authenticated identity, never a request."""

    user_id: str
    role: str


@dataclass
class Hit:
    """A chunk found by search, before or after reranking."""

    chunk_id: str
    document_id: str
    page_no: int
    chunk_index: int
    text: str
    score: float  # fused score; replaced by the rerank score after reranking
    kind: str = "text"
    section: str = ""
    title: str = ""


@dataclass(frozen=True)
class OcrBlock:
    """One recognised line or cell. ``bbox`` is (x0, y0, x1, y1) in page points (1/72 inch),
    origin top-left, so it maps onto the PDF page whatever the rendering dpi was."""

    text: str
    bbox: tuple[float, float, float, float]
    confidence: float
    kind: str = "text"  # "text" | "table" | "title" | "figure"
    redacted: bool = False  # held personal information (bunko.pii): its text is redacted, its box blacked out


@dataclass
class PageText:
    """One page after extraction: normalised Markdown, its blocks, and where the text came from."""

    page_no: int  # 1-based
    markdown: str
    source: str  # "layer" or an OCR engine name
    confidence: float  # 1.0 for a good text layer; OCR confidence otherwise
    width_pt: float = 0.0
    height_pt: float = 0.0
    blocks: list[OcrBlock] = field(default_factory=list)


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk before it has ids and vectors."""

    page_no: int
    chunk_index: int  # position in the document, 0-based, dense
    text: str
    kind: str = "text"  # "text" | "table"
    section: str = ""  # nearest heading above the chunk, if any

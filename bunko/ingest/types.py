"""What the ingestion stages hand each other."""

from __future__ import annotations

from dataclasses import dataclass, field

from bunko.models.base import OcrBlock


@dataclass
class PdfInfo:
    """What validation learned about an uploaded file."""

    sha256: str
    size_bytes: int
    page_count: int
    title: str  # from the PDF metadata, else the file name without extension


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

"""What validation hands the rest of ingestion (the page and chunk types are ``bunko.domain``'s)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PdfInfo:
    """What validation learned about an uploaded file."""

    sha256: str
    size_bytes: int
    page_count: int
    title: str  # from the PDF metadata, else the file name without extension

"""What the ingestion stages share: validation's findings and the worker's heartbeat (the page and
chunk types are ``bunko.domain``'s)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Called by a stage between units of work (pages, batches): it renews the job's lease and raises
# when the worker has lost it or is stopping, so the stage ends at a safe point.
Heartbeat = Callable[[], None]


@dataclass
class PdfInfo:
    """What validation learned about an uploaded file."""

    sha256: str
    size_bytes: int
    page_count: int
    title: str  # from the PDF metadata, else the file name without extension

"""What retrieval and generation hand each other and the edges."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class QueryFilters:
    document_ids: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    date_from: datetime | None = None
    date_to: datetime | None = None




@dataclass
class Source:
    """One page an answer draws on. Several context blocks of one page are one source; ``refs``
    are their block numbers (the N of ``[文書N]``), cited ones first, so a client can map a
    citation to its source even when sources are merged and reordered."""

    document_id: str
    title: str
    page: int
    snippet: str
    score: float
    refs: list[int] = field(default_factory=list)


@dataclass
class Answer:
    query_id: str
    answer: str
    sources: list[Source]
    confidence: float
    processing_time_ms: float
    # "generative" (an LLM wrote it), "extractive" (sentences picked from passages, no LLM),
    # or "not_found" (nothing above the threshold).
    mode: str
    reranked: bool = False
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The answer as JSON-ready data: the query cache, the streamed ``done`` event, the CLI."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        fields = dict(data)
        fields["sources"] = [Source(**s) for s in fields.get("sources", [])]
        return cls(**fields)

"""A collection's PII policy applied to a document's pages, between extraction and storage.

``flag`` keeps the pages as they are and records each finding; ``redact`` also replaces every
finding in the page's text and in the blocks that hold it (marked ``redacted``, so the page picture
is drawn with those boxes blacked out). Everything downstream — stored page text, chunks, BM25
terms, vectors, snippets, the LLM's context — is made from the redacted pages, so nothing else has
to know about the policy. The original PDF is not touched and stays behind its ACL.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, get_args

from sqlalchemy import func, select

from bunko.collections import PiiPolicy, collection_config, get_collection
from bunko.domain import OcrBlock, PageText
from bunko.errors import Conflict, InvalidInput, NotFound
from bunko.ingest.submit import reprocess_document
from bunko.pii.detect import Finding, label, redact
from bunko.store.db import Collection, Document, PiiFinding

if TYPE_CHECKING:
    from bunko.pii.detect import PiiDetector
    from bunko.runtime import Runtime

# A block shorter than this that lies inside a finding (a number split over two spans) is blacked
# out whole; shorter ones ("-", "様") are too common to say anything.
_MIN_PART = 3


@dataclass(frozen=True)
class PageFinding:
    page_no: int
    finding: Finding


def screen_pages(detector: PiiDetector, pages: list[PageText], policy: str,
                 each_page: Callable[[], None] = lambda: None) -> tuple[list[PageText], list[PageFinding]]:
    """The pages as the policy stores them, and what was found on each (offsets in the original).
    ``each_page`` runs after every page: the worker's heartbeat, so a lost lease stops it there."""
    if policy == "off":
        return pages, []
    out: list[PageText] = []
    found: list[PageFinding] = []
    for page in pages:
        findings = detector.find(page.markdown)
        found.extend(PageFinding(page.page_no, f) for f in findings)
        if policy == "redact" and findings:
            values = {page.markdown[f.start:f.end]: f for f in findings}
            page = replace(page, markdown=redact(page.markdown, findings),
                           blocks=[_redact_block(b, values) for b in page.blocks])
        out.append(page)
        each_page()
    return out, found


def _redact_block(block: OcrBlock, values: dict[str, Finding]) -> OcrBlock:
    text, hit = block.text, False
    for value, f in values.items():
        # Spacing may differ between a block and the page's Markdown (runs joined, spaces between
        # CJK characters dropped): match the value whatever the spaces inside it.
        pattern = re.compile(r"\s*".join(re.escape(ch) for ch in value if not ch.isspace()))
        if pattern.search(text):
            text = pattern.sub(label(f.entity), text)
            hit = True
    part = block.text.strip()
    if not hit and len(part) >= _MIN_PART and any(part in v for v in values):
        text, hit = label(next(f.entity for v, f in values.items() if part in v)), True
    return replace(block, text=text, redacted=True) if hit else block


@dataclass(frozen=True)
class PolicyChange:
    collection: str
    collection_id: str
    old: str
    new: str
    requeued: int


def set_pii_policy(rt: Runtime, collection: str, policy: str) -> PolicyChange:
    """Set a collection's PII policy and re-process its documents under it: a policy covers the
    documents already there, not only the next upload. A document busy meanwhile notices the
    change when it finishes and runs again (bunko.ingest.pipeline)."""
    if policy not in get_args(PiiPolicy):
        raise InvalidInput(f"unknown PII policy {policy!r}: use one of {', '.join(get_args(PiiPolicy))}")
    coll = get_collection(rt, collection)
    old = collection_config(coll)
    if old.pii == policy:
        return PolicyChange(coll.name, coll.id, old.pii, policy, 0)
    new = old.model_copy(update={"pii": policy})
    with rt.sessions.begin() as s:
        row = s.get(Collection, coll.id)
        if row is None:
            raise NotFound(f"collection {collection!r} was deleted meanwhile")
        row.config = new.model_dump()
        ids = list(s.scalars(select(Document.id).where(Document.collection_id == coll.id)))
    requeued = 0
    for doc_id in ids:
        try:
            reprocess_document(rt, doc_id)
            requeued += 1
        except (Conflict, NotFound):
            continue  # busy (it re-checks the policy when it ends) or deleted meanwhile
    rt.cache.bump(f"collection:{coll.id}")
    return PolicyChange(coll.name, coll.id, old.pii, policy, requeued)


@dataclass(frozen=True)
class PageReport:
    document_id: str
    filename: str
    page_no: int
    counts: dict[str, int]
    redacted: bool


@dataclass(frozen=True)
class FindingsReport:
    collection: str
    policy: str
    totals: dict[str, int]
    pages: list[PageReport]


def findings_report(rt: Runtime, collection: str) -> FindingsReport:
    """What was found on each page of the collection's documents: kinds and counts, never values."""
    coll = get_collection(rt, collection)
    with rt.sessions() as s:
        rows = s.execute(
            select(PiiFinding.document_id, Document.filename, PiiFinding.page_no, PiiFinding.entity,
                   PiiFinding.redacted, func.count())
            .join(Document, Document.id == PiiFinding.document_id)
            .where(Document.collection_id == coll.id)
            .group_by(PiiFinding.document_id, Document.filename, PiiFinding.page_no,
                      PiiFinding.entity, PiiFinding.redacted)
            .order_by(Document.filename, PiiFinding.page_no)
        ).all()
    pages: dict[tuple[str, int], PageReport] = {}
    for doc_id, filename, page_no, entity, redacted, n in rows:
        page = pages.setdefault((doc_id, page_no), PageReport(doc_id, filename, page_no, {}, bool(redacted)))
        page.counts[entity] = int(n)
    totals: dict[str, int] = {}
    for page in pages.values():
        for entity, n in page.counts.items():
            totals[entity] = totals.get(entity, 0) + n
    return FindingsReport(coll.name, collection_config(coll).pii, totals, list(pages.values()))

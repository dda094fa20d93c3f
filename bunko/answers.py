"""An answer's sources and confidence, from its text and the context blocks it was written over.

Confidence (0–1), written down because clients show it:

* reranked: the best cross-encoder probability among the passages the answer cites (the
  reranker's scores are probabilities, and every kept passage is already above the threshold);
* not reranked: 0.6 × the best fused score among the cited passages. Fused scores are a weighted
  mean of Milvus-normalised similarities, not probabilities, so they are capped below the range a
  reranked answer can reach;
* a generated answer that cites nothing: half of that (the sources are then the whole context,
  and nobody knows which passage, if any, the model used);
* "not found": 0.
"""

from __future__ import annotations

from bunko.domain import Hit
from bunko.generate.citations import cited_numbers
from bunko.generate.prompts import NOT_FOUND_ANSWER
from bunko.retrieve.types import Answer, Source

SNIPPET_CHARS = 200
# See the module docstring: fused scores are not probabilities.
FUSION_CONFIDENCE_CAP = 0.6
UNCITED_CONFIDENCE_FACTOR = 0.5


def not_found(query_id: str, *, reranked: bool) -> Answer:
    return Answer(query_id=query_id, answer=NOT_FOUND_ANSWER, sources=[], confidence=0.0,
                  processing_time_ms=0.0, mode="not_found", reranked=reranked)


def compose_answer(query_id: str, text: str, mode: str, blocks: list[Hit], *, reranked: bool) -> Answer:
    """Sources and confidence for an answer over context ``blocks`` (block N = ``blocks[N-1]``)."""
    cited = cited_numbers(text, len(blocks))
    if mode == "generative" and text.startswith(NOT_FOUND_ANSWER) and not cited:
        # The model read the passages and said they do not answer: believe it, show no sources.
        return not_found(query_id, reranked=reranked)
    order = cited + [n for n in range(1, len(blocks) + 1) if n not in cited]
    sources: list[Source] = []
    by_page: dict[tuple[str, int], Source] = {}
    for n in order:
        hit = blocks[n - 1]
        page_key = (hit.document_id, hit.page_no)
        if page_key in by_page:  # two chunks of one page are one source; keep the better score
            by_page[page_key].score = max(by_page[page_key].score, round(hit.score, 4))
            by_page[page_key].refs.append(n)
            continue
        src = Source(document_id=hit.document_id, title=hit.title or hit.document_id, page=hit.page_no,
                     snippet=snippet(hit.text), score=round(hit.score, 4), refs=[n])
        by_page[page_key] = src
        sources.append(src)
    basis = [blocks[n - 1].score for n in cited] or [blocks[0].score]
    confidence = max(basis) if reranked else FUSION_CONFIDENCE_CAP * max(basis)
    if not cited:
        confidence *= UNCITED_CONFIDENCE_FACTOR
    return Answer(query_id=query_id, answer=text, sources=sources,
                  confidence=round(min(max(confidence, 0.0), 1.0), 3),
                  processing_time_ms=0.0, mode=mode, reranked=reranked)


def snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"

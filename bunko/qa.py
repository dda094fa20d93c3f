"""Answering a question: the library call behind ``bunko ask`` and the query API.

Flow (ARCHITECTURE.md §6): validate and normalise the question → resolve the collection (the
principal must be allowed to read it) → query cache → hybrid search + rerank with the ACL inside
the search → nothing left (or, without a reranker, the collection does not cover the question):
"not found" → context blocks within the token budget → the LLM (streamed) or, with none
configured, an extractive answer → citations mapped to sources → confidence → log the query →
cache the answer.

``ask_stream`` yields the same work as events: ``token`` (text as it is produced), then one
``sources``, then one ``done`` holding the whole answer; ``ask`` returns the final answer.

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

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from bunko import metrics
from bunko.collections import DEFAULT_COLLECTION, collection_config, readable_collection
from bunko.domain import Hit, Principal
from bunko.errors import BunkoError
from bunko.generate.citations import cited_numbers, strip_invalid_citations
from bunko.generate.extractive import extractive_answer
from bunko.generate.prompts import NOT_FOUND_ANSWER, STOP_SEQUENCES, build_messages
from bunko.retrieve.context import build_context
from bunko.retrieve.query import PreparedQuery, prepare_query
from bunko.retrieve.search import SearchParams, search
from bunko.retrieve.types import Answer, QueryFilters, Source
from bunko.store.db import Collection, QueryLog

if TYPE_CHECKING:
    from bunko.runtime import Runtime

log = logging.getLogger(__name__)

SNIPPET_CHARS = 200
# See the module docstring: fused scores are not probabilities.
FUSION_CONFIDENCE_CAP = 0.6
UNCITED_CONFIDENCE_FACTOR = 0.5
CACHE_VERSION = "2"  # bump when the cached answer's shape or the pipeline's meaning changes


class TokenEvent(TypedDict):
    type: Literal["token"]
    text: str


class SourcesEvent(TypedDict):
    type: Literal["sources"]
    sources: list[dict[str, Any]]


class DoneEvent(TypedDict):
    type: Literal["done"]
    answer: dict[str, Any]


QaEvent = TokenEvent | SourcesEvent | DoneEvent


def ask(
    rt: Runtime,
    question: str,
    *,
    principal: Principal,
    collection: str = DEFAULT_COLLECTION,
    filters: QueryFilters | None = None,
    use_cache: bool = True,
) -> Answer:
    """Answer ``question`` from the documents of ``collection`` that ``principal`` may read."""
    done: DoneEvent | None = None
    for event in ask_stream(rt, question, principal=principal, collection=collection, filters=filters,
                            use_cache=use_cache):
        if event["type"] == "done":
            done = event
    if done is None:  # unreachable: ask_stream always ends with "done" or raises
        raise BunkoError("the answer pipeline ended without an answer")
    return answer_from_dict(done["answer"])


def ask_stream(
    rt: Runtime,
    question: str,
    *,
    principal: Principal,
    collection: str = DEFAULT_COLLECTION,
    filters: QueryFilters | None = None,
    use_cache: bool = True,
) -> Iterator[QaEvent]:
    """``token``… → ``sources`` → ``done``. Errors (invalid query, no access, model down) are raised
    before the first event where possible, else from the iterator."""
    started = time.perf_counter()
    settings = rt.settings
    prepared = prepare_query(question, max_chars=settings.query_max_chars)
    coll = readable_collection(rt, principal, collection)
    return _answer_events(rt, prepared, coll, principal, filters, use_cache=use_cache, started=started)


def _answer_events(
    rt: Runtime,
    prepared: PreparedQuery,
    coll: Collection,
    principal: Principal,
    filters: QueryFilters | None,
    *,
    use_cache: bool,
    started: float,
) -> Iterator[QaEvent]:
    settings = rt.settings
    query_id = uuid.uuid4().hex
    key = _cache_key(rt, coll, principal, prepared, filters) if use_cache else None

    if key is not None:
        cached = rt.cache.get_json(key)
        if isinstance(cached, dict):
            metrics.bunko_cache_hits_total.labels(cache="query").inc()
            answer = answer_from_dict(cached)
            answer.query_id = query_id
            answer.cached = True
            answer.processing_time_ms = _elapsed_ms(started)
            yield TokenEvent(type="token", text=answer.answer)
            yield from _finish(rt, answer, prepared, coll, principal)
            return
        metrics.bunko_cache_misses_total.labels(cache="query").inc()

    result = search(
        rt.vectors, rt.embedder_for(principal.user_id), rt.reranker,
        collection_name=coll.vector_collection, collection_id=coll.id, prepared=prepared,
        principal=principal, filters=filters, params=SearchParams.from_config(collection_config(coll)),
    )
    for stage, ms in result.timings_ms.items():
        metrics.rag_query_duration_seconds.labels(stage=stage).observe(ms / 1000)

    if not result.hits or result.not_covered:
        # Nothing readable matched, or (no reranker) nothing matched closely enough to be about the
        # question: the collection does not cover it (bunko.retrieve.recipe.refuse).
        answer = Answer(query_id=query_id, answer=NOT_FOUND_ANSWER, sources=[], confidence=0.0,
                        processing_time_ms=0.0, mode="not_found", reranked=result.reranked)
        yield TokenEvent(type="token", text=answer.answer)
    else:
        context, blocks = build_context(result.hits, token_budget=settings.context_token_budget,
                                        count_tokens=token_counter(settings.llm_tokenizer))
        if not blocks:  # every passage alone is over the budget: give the model the best one
            blocks = result.hits[:1]
            context, blocks = build_context(blocks, token_budget=10**9)
        gen_start = time.perf_counter()
        text = ""
        mode = "extractive"
        if rt.chat is not None:
            parts: list[str] = []
            for piece in rt.chat.stream(build_messages(prepared.text, context),
                                        max_tokens=settings.answer_max_tokens, stop=STOP_SEQUENCES):
                parts.append(piece)
                yield TokenEvent(type="token", text=piece)
            text = strip_invalid_citations("".join(parts), len(blocks)).strip()
            mode = "generative"
        if not text:
            if rt.chat is not None:
                log.warning("the LLM returned an empty answer; falling back to an extractive one")
            text = extractive_answer(prepared.text, blocks)
            mode = "extractive"
            yield TokenEvent(type="token", text=text)
        metrics.rag_query_duration_seconds.labels(stage="generate").observe(time.perf_counter() - gen_start)
        answer = _compose(query_id, text, mode, blocks, reranked=result.reranked)

    answer.processing_time_ms = _elapsed_ms(started)
    if key is not None:
        rt.cache.set_json(key, answer_to_dict(answer), settings.query_cache_ttl_s)
    yield from _finish(rt, answer, prepared, coll, principal)


def _compose(query_id: str, text: str, mode: str, blocks: list[Hit], *, reranked: bool) -> Answer:
    """Sources and confidence for an answer over context ``blocks`` (block N = ``blocks[N-1]``)."""
    if mode == "generative" and text.startswith(NOT_FOUND_ANSWER) and not cited_numbers(text, len(blocks)):
        # The model read the passages and said they do not answer: believe it, show no sources.
        return Answer(query_id=query_id, answer=NOT_FOUND_ANSWER, sources=[], confidence=0.0,
                      processing_time_ms=0.0, mode="not_found", reranked=reranked)
    cited = cited_numbers(text, len(blocks))
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
                     snippet=_snippet(hit.text), score=round(hit.score, 4), refs=[n])
        by_page[page_key] = src
        sources.append(src)
    basis = [blocks[n - 1].score for n in cited] or [blocks[0].score]
    confidence = max(basis) if reranked else FUSION_CONFIDENCE_CAP * max(basis)
    if not cited:
        confidence *= UNCITED_CONFIDENCE_FACTOR
    return Answer(query_id=query_id, answer=text, sources=sources,
                  confidence=round(min(max(confidence, 0.0), 1.0), 3),
                  processing_time_ms=0.0, mode=mode, reranked=reranked)


def _finish(
    rt: Runtime, answer: Answer, prepared: PreparedQuery, coll: Collection, principal: Principal
) -> Iterator[QaEvent]:
    data = answer_to_dict(answer)
    yield SourcesEvent(type="sources", sources=data["sources"])
    _log_query(rt, answer, prepared, coll, principal, data["sources"])
    # Counted here, once per answer delivered, whichever edge asked (JSON, SSE, WebSocket, the
    # OpenAI-compatible route, the CLI). A cache hit is an answered query too: it is counted, with
    # cached="true", so the rate of questions and the cache's share of them both read off one
    # metric. Refused questions (invalid, no access) raise before this and are not counted.
    metrics.rag_queries_total.labels(mode=answer.mode, cached=str(answer.cached).lower()).inc()
    metrics.rag_query_duration_seconds.labels(stage="total").observe(answer.processing_time_ms / 1000)
    yield DoneEvent(type="done", answer=data)


def _log_query(rt: Runtime, answer: Answer, prepared: PreparedQuery, coll: Collection,
               principal: Principal, sources: list[dict[str, Any]]) -> None:
    try:
        with rt.sessions.begin() as s:
            s.add(QueryLog(id=answer.query_id, user_id=principal.user_id, collection_id=coll.id,
                           query=prepared.text, answer=answer.answer, sources=sources,
                           confidence=answer.confidence, mode=answer.mode, cached=answer.cached,
                           processing_time_ms=answer.processing_time_ms))
    except Exception:
        # The user has the answer already; a failed log row must not take it away.
        log.exception("could not log query %s", answer.query_id)


# --- cache --------------------------------------------------------------------------------------


def _cache_key(rt: Runtime, coll: Collection, principal: Principal, prepared: PreparedQuery,
               filters: QueryFilters | None) -> str:
    """Everything an answer depends on. The ACL identity is the user AND the role: two users, or
    one user whose role changed, may see different documents. The collection's generation is
    bumped when a document is added, reprocessed or deleted, which orphans every older entry."""
    generation = rt.cache.generation(f"collection:{coll.id}")
    settings = rt.settings
    parts = {
        "v": CACHE_VERSION,
        "user": principal.user_id,
        "role": principal.role,
        "q": prepared.text,
        "filters": _filters_dict(filters),
        "config": coll.config,
        "embedder": rt.embedder.model_id,
        "reranker": rt.reranker.model_id if rt.reranker is not None else "",
        "llm": _llm_identity(rt),
        "budget": settings.context_token_budget,
        "max_tokens": settings.answer_max_tokens,
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode())
    return f"qa:{coll.id}:{generation}:{digest.hexdigest()}"


def _filters_dict(filters: QueryFilters | None) -> dict[str, Any]:
    if filters is None:
        return {}
    return {
        "document_ids": sorted(filters.document_ids),
        "tags": sorted(filters.tags),
        "date_from": filters.date_from.isoformat() if filters.date_from else None,
        "date_to": filters.date_to.isoformat() if filters.date_to else None,
    }


def _llm_identity(rt: Runtime) -> str:
    if rt.chat is None:
        return "extractive"
    try:
        return f"{rt.settings.llm_url}|{rt.chat.model_id}"
    except BunkoError:
        # Model discovery needs the server; a cached answer must still be reachable without it.
        return f"{rt.settings.llm_url}|{rt.settings.llm_model}"


# --- helpers ------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def token_counter(tokenizer: str) -> Callable[[str], int] | None:
    """Count with the LLM's own tokenizer when ``tokenizer`` (``BUNKO_LLM_TOKENIZER``: a local
    directory, or a Hugging Face id already in the local cache) loads offline; otherwise None,
    and the context builder estimates."""
    if not tokenizer:
        return None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer, local_files_only=True)
    except Exception as exc:  # missing files, unknown id, bad config: all mean "estimate instead"
        log.warning("cannot load the LLM tokenizer %r offline (%s); token counts are estimated",
                    tokenizer, exc)
        return None

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False, verbose=False))

    return count


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def answer_to_dict(answer: Answer) -> dict[str, Any]:
    return asdict(answer)


def answer_from_dict(data: dict[str, Any]) -> Answer:
    fields = dict(data)
    fields["sources"] = [s if isinstance(s, Source) else Source(**s) for s in fields.get("sources", [])]
    return Answer(**fields)


__all__ = ["DoneEvent", "QaEvent", "SourcesEvent", "TokenEvent", "answer_from_dict",
           "answer_to_dict", "ask", "ask_stream", "token_counter"]

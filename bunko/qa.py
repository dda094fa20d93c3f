"""Answering a question: the library call behind ``bunko ask`` and the query API.

Flow (ARCHITECTURE.md §6): validate and normalise the question → resolve the collection (the
principal must be allowed to read it) → query cache → hybrid search + rerank with the ACL inside
the search → nothing left (or, without a reranker, the collection does not cover the question):
"not found" → context blocks within the token budget → the LLM (streamed) or, with none
configured, an extractive answer → citations mapped to sources → confidence → log the query →
cache the answer.

``ask_stream`` yields the same work as events: ``token`` (text as it is produced), then one
``sources``, then one ``done`` holding the whole answer; ``ask`` returns the final answer.

Confidence and sources are composed in ``bunko.answers``; the cache key is
``bunko.answer_cache``. The answer is serialised once, here, for the events (and the cache).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from bunko import metrics, tracing
from bunko.answer_cache import cache_key
from bunko.answers import compose_answer, not_found
from bunko.collections import DEFAULT_COLLECTION, collection_config, readable_collection
from bunko.domain import Principal
from bunko.errors import BunkoError
from bunko.generate.citations import strip_invalid_citations
from bunko.generate.extractive import extractive_answer
from bunko.generate.prompts import STOP_SEQUENCES, build_messages
from bunko.generate.tokens import token_counter
from bunko.retrieve.context import build_context
from bunko.retrieve.query import PreparedQuery, prepare_query
from bunko.retrieve.search import SearchParams, search
from bunko.retrieve.types import Answer, QueryFilters
from bunko.store.db import Collection, QueryLog

if TYPE_CHECKING:
    from bunko.runtime import Runtime

log = logging.getLogger(__name__)


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
    collection: str | Collection = DEFAULT_COLLECTION,
    filters: QueryFilters | None = None,
    use_cache: bool = True,
) -> Answer:
    """Answer ``question`` from the documents of ``collection`` that ``principal`` may read."""
    answer: Answer | None = None
    for item in _start(rt, question, principal, collection, filters, use_cache):
        if isinstance(item, Answer):
            answer = item
    if answer is None:  # unreachable: the pipeline always ends with the answer or raises
        raise BunkoError("the answer pipeline ended without an answer")
    return answer


def ask_stream(
    rt: Runtime,
    question: str,
    *,
    principal: Principal,
    collection: str | Collection = DEFAULT_COLLECTION,
    filters: QueryFilters | None = None,
    use_cache: bool = True,
) -> Iterator[QaEvent]:
    """``token``… → ``sources`` → ``done``. Errors (invalid query, no access, model down) are raised
    before the first event where possible, else from the iterator. ``collection`` is a name, or a
    row the caller has already resolved with :func:`bunko.collections.readable_collection`."""
    return _events(_start(rt, question, principal, collection, filters, use_cache))


def _start(rt: Runtime, question: str, principal: Principal, collection: str | Collection,
           filters: QueryFilters | None, use_cache: bool) -> Iterator[str | Answer]:
    # Outside the generator, so that a refused question raises at the call, not at the first event.
    started = time.perf_counter()
    prepared = prepare_query(question, max_chars=rt.settings.query_max_chars)
    coll = collection if isinstance(collection, Collection) else readable_collection(rt, principal, collection)
    return _answer(rt, prepared, coll, principal, filters, use_cache=use_cache, started=started)


def _events(items: Iterator[str | Answer]) -> Iterator[QaEvent]:
    for item in items:
        if isinstance(item, str):
            yield TokenEvent(type="token", text=item)
        else:
            data = item.to_dict()
            yield SourcesEvent(type="sources", sources=data["sources"])
            yield DoneEvent(type="done", answer=data)


def _answer(
    rt: Runtime,
    prepared: PreparedQuery,
    coll: Collection,
    principal: Principal,
    filters: QueryFilters | None,
    *,
    use_cache: bool,
    started: float,
) -> Iterator[str | Answer]:
    """The answer's text as it is produced, then the answer, logged and counted."""
    settings = rt.settings
    query_id = uuid.uuid4().hex
    key = cache_key(rt, coll, principal, prepared, filters) if use_cache else None

    if key is not None:
        cached = rt.cache.get_json(key)
        if isinstance(cached, dict):
            metrics.bunko_cache_hits_total.labels(cache="query").inc()
            answer = Answer.from_dict(cached)
            answer.query_id = query_id
            answer.cached = True
            answer.processing_time_ms = _elapsed_ms(started)
            yield answer.answer
            yield _finish(rt, answer, prepared, coll, principal)
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
        answer = not_found(query_id, reranked=result.reranked)
        yield answer.answer
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
            # Not made current: a generator's yields may resume in another context (a streamed
            # answer), where a current span could not be detached cleanly.
            generation = tracing.tracer.start_span("llm_generation", attributes={"bunko.blocks": len(blocks)})
            try:
                for piece in rt.chat.stream(build_messages(prepared.text, context),
                                            max_tokens=settings.answer_max_tokens, stop=STOP_SEQUENCES):
                    parts.append(piece)
                    yield piece
            finally:
                generation.end()
            text = strip_invalid_citations("".join(parts), len(blocks)).strip()
            mode = "generative"
        if not text:
            if rt.chat is not None:
                log.warning("the LLM returned an empty answer; falling back to an extractive one")
            text = extractive_answer(prepared.text, blocks)
            mode = "extractive"
            yield text
        metrics.rag_query_duration_seconds.labels(stage="generate").observe(time.perf_counter() - gen_start)
        answer = compose_answer(query_id, text, mode, blocks, reranked=result.reranked)

    answer.processing_time_ms = _elapsed_ms(started)
    if key is not None:
        rt.cache.set_json(key, answer.to_dict(), settings.query_cache_ttl_s)
    yield _finish(rt, answer, prepared, coll, principal)


def _finish(rt: Runtime, answer: Answer, prepared: PreparedQuery, coll: Collection,
            principal: Principal) -> Answer:
    _log_query(rt, answer, prepared, coll, principal)
    # Counted here, once per answer delivered, whichever edge asked (JSON, SSE, WebSocket, the
    # OpenAI-compatible route, the CLI). A cache hit is an answered query too: it is counted, with
    # cached="true", so the rate of questions and the cache's share of them both read off one
    # metric. Refused questions (invalid, no access) raise before this and are not counted.
    metrics.rag_queries_total.labels(mode=answer.mode, cached=str(answer.cached).lower()).inc()
    metrics.rag_query_duration_seconds.labels(stage="total").observe(answer.processing_time_ms / 1000)
    return answer


def _log_query(rt: Runtime, answer: Answer, prepared: PreparedQuery, coll: Collection,
               principal: Principal) -> None:
    try:
        with rt.sessions.begin() as s:
            s.add(QueryLog(id=answer.query_id, user_id=principal.user_id, collection_id=coll.id,
                           query=prepared.text, answer=answer.answer,
                           sources=[asdict(src) for src in answer.sources],
                           confidence=answer.confidence, mode=answer.mode, cached=answer.cached,
                           processing_time_ms=answer.processing_time_ms))
    except Exception:
        # The user has the answer already; a failed log row must not take it away.
        log.exception("could not log query %s", answer.query_id)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


__all__ = ["DoneEvent", "QaEvent", "SourcesEvent", "TokenEvent", "ask", "ask_stream"]

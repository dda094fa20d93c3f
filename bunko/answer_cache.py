"""The query cache's key: everything an answer depends on, so a stale or foreign answer is never
served. The ACL identity is the user AND the role: two users, or one user whose role changed, may
see different documents. The collection's generation is bumped when a document is added,
reprocessed or deleted, which orphans every older entry."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from bunko.domain import Principal
from bunko.errors import BunkoError
from bunko.retrieve.query import PreparedQuery
from bunko.retrieve.types import QueryFilters
from bunko.store.db import Collection

if TYPE_CHECKING:
    from bunko.runtime import Runtime

CACHE_VERSION = "2"  # bump when the cached answer's shape or the pipeline's meaning changes


def cache_key(rt: Runtime, coll: Collection, principal: Principal, prepared: PreparedQuery,
              filters: QueryFilters | None) -> str:
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

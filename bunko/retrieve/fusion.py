"""Fusing the dense and BM25 legs of a hybrid search into one ranking.

Measured on the real-documents set (``bench/quality.py``): min-max normalising each leg over its
own candidates, then a weighted sum, beats Milvus's built-in normalisation (cosine → (1 + s) / 2,
BM25 → 2·atan(s)/π) and reciprocal-rank fusion. Milvus's BM25 normalisation saturates (atan of a
score of 8 and of 20 differ by 0.05), so the BM25 leg barely reorders the dense one; RRF throws the
score gaps away altogether.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from bunko.domain import Hit

Fusion = Literal["minmax", "milvus", "rrf"]


def completed(dense: Sequence[Hit], sparse: Sequence[Hit], *, cosines: dict[str, float],
              bm25: dict[str, float]) -> tuple[list[Hit], list[Hit]]:
    """Both legs over the union of their candidates: a chunk only BM25 found gets its real cosine
    (``cosines``), one only the dense leg found its real BM25 score (``bm25``; absent = no query
    term = 0), instead of counting as 0 in the leg that missed it. Measured on the real-documents
    set: +2.8 points R@1, +2.1 R@5 over fusing the legs as returned."""
    in_dense = {h.chunk_id for h in dense}
    in_sparse = {h.chunk_id for h in sparse}
    more_dense = [replace(h, score=cosines[h.chunk_id]) for h in sparse
                  if h.chunk_id not in in_dense and h.chunk_id in cosines]
    more_sparse = [replace(h, score=bm25.get(h.chunk_id, 0.0)) for h in dense if h.chunk_id not in in_sparse]
    return [*dense, *more_dense], [*sparse, *more_sparse]
RRF_K = 60


def _minmax(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    return {k: (s - lo) / (hi - lo) if hi > lo else 1.0 for k, s in scores.items()}


def fuse(dense: Sequence[Hit], sparse: Sequence[Hit], weights: tuple[float, float],
         how: Fusion = "minmax") -> list[Hit]:
    """One ranking of the union of both legs, best first; each hit's score is its fused score.

    ``dense`` scores are cosines, ``sparse`` scores raw BM25; a hit missing from a leg gets 0 there.
    """
    by_id: dict[str, Hit] = {}
    for h in (*dense, *sparse):
        by_id.setdefault(h.chunk_id, h)
    d = {h.chunk_id: h.score for h in dense}
    s = {h.chunk_id: h.score for h in sparse}
    if how == "rrf":
        fused: dict[str, float] = {}
        for leg in (d, s):
            for rank, key in enumerate(sorted(leg, key=lambda k: -leg[k]), 1):
                fused[key] = fused.get(key, 0.0) + 1 / (RRF_K + rank)
    else:
        if how == "milvus":
            nd = {k: (1 + v) / 2 for k, v in d.items()}
            ns = {k: 2 * math.atan(v) / math.pi for k, v in s.items()}
        else:
            nd, ns = _minmax(d), _minmax(s)
        fused = {k: weights[0] * nd.get(k, 0.0) + weights[1] * ns.get(k, 0.0) for k in by_id}
    order = sorted(by_id, key=lambda k: (-fused[k], k))
    return [replace(by_id[k], score=round(fused[k], 6)) for k in order]

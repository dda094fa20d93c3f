"""The Serve deployments build the core's model classes with the limits and precision their spec
asks for, through those classes' own parameters (no reaching into private attributes)."""

from __future__ import annotations

import pytest

from bunko.serving.gpu import half_precision


@pytest.mark.parametrize(("dtype", "device", "expected"), [
    ("auto", "cuda", "fp16"), ("fp16", "cuda:0", "fp16"), ("bf16", "cuda", "bf16"), ("fp32", "cuda", None),
    ("auto", "cpu", None), ("bf16", "cpu", None),
])
def test_half_precision_only_on_a_gpu_and_never_against_an_explicit_fp32(dtype, device, expected):
    assert half_precision(dtype, device) == expected


def test_the_serving_embedder_and_reranker_take_the_specs_token_limits(tmp_path):
    from bunko.serving.embed import load_serving_embedder
    from bunko.serving.rerank import load_serving_reranker
    from bunko.serving.spec import EmbeddingSpec, RerankerSpec
    from bunko.testing.tiny_models import make_tiny_embedder, make_tiny_reranker

    embed_dir, rerank_dir = make_tiny_embedder(tmp_path / "e"), make_tiny_reranker(tmp_path / "r")
    embedder = load_serving_embedder(EmbeddingSpec(model=str(embed_dir), max_seq_length=24), "cpu")
    assert embedder._model.max_seq_length == 24  # type: ignore[attr-defined]
    long_text = "長い文章です。" * 200
    assert embedder.embed_documents([long_text]).shape == (1, embedder.dim)

    reranker = load_serving_reranker(RerankerSpec(model=str(rerank_dir), max_seq_length=40), "cpu")
    assert reranker._model.max_length == 40
    scores = reranker.score("質問", ["短い文。", long_text])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)

"""All four Bunko Serve applications on one real local Ray cluster, driven over HTTP.

One cluster, shared with ``test_serve_pipeline.py`` (the ``serve_cluster`` fixture, ``tests/support/ray_serve.py``):
``ray.init`` (2 CPUs, no dashboard, loopback only) + ``serve.start`` on a free port, then every
application of the config ``build_serve_config`` writes is built from its ``import_path`` and
``args`` and deployed (``serve.run_many``) under its ``route_prefix``. The models are the tiny
test-made ones (Llama embedder with last-token pooling, Llama reranker, Qwen2 LLM) and rapidocr.
The core's own HTTP clients (``bunko.models.http``, the generate helper's OpenAI client) are what
talk to it, and their answers are compared with the same models run in-process.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from bunko.errors import InvalidInput
from bunko.models.base import ChatMessage
from bunko.models.http import HttpEmbedder, HttpOcrEngine, HttpReranker

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FONT = "/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf"
LINES = ["文庫は日本語の文書を読みます。", "決算報告書の第十二頁を参照。"]


@pytest.fixture(scope="module")
def models(serve_cluster):
    return serve_cluster.models


@pytest.fixture(scope="module")
def serve_url(serve_cluster):
    return serve_cluster.url


@pytest.mark.parametrize(
    "route", ["/ocr/health", "/embed/health", "/rerank/health", "/llm/health", "/llm/v1/models"]
)
def test_every_role_answers_its_health_route(serve_url, route):
    r = httpx.get(serve_url + route, timeout=30)
    assert r.status_code == 200, r.text


def test_embeddings_over_serve_match_the_model_in_process(serve_url, models):
    from bunko.models.embedding import SentenceTransformerEmbedder

    texts = ["文庫の質問", "決算報告書の売上高", "hello world"] * 7  # 21 texts: more than one batch of 16
    remote = HttpEmbedder(serve_url, timeout_s=60)
    assert remote.model_id == str(models["embedder"])
    assert remote.dim == 32
    docs = remote.embed_documents(texts)
    assert docs.shape == (21, 32) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    local = SentenceTransformerEmbedder(str(models["embedder"]), device="cpu")
    np.testing.assert_allclose(docs, local.embed_documents(texts), atol=1e-4)
    np.testing.assert_allclose(remote.embed_queries(texts[:3]), local.embed_queries(texts[:3]), atol=1e-4)
    assert remote.embed_documents([]).shape == (0, 32)


def test_concurrent_embedding_requests_each_get_their_own_vectors(serve_url):
    from concurrent.futures import ThreadPoolExecutor

    remote = HttpEmbedder(serve_url, timeout_s=60)
    texts = [f"第{i}頁の本文" for i in range(12)]
    expected = remote.embed_documents(texts)
    with ThreadPoolExecutor(6) as pool:
        singles = list(pool.map(lambda t: remote.embed_documents([t])[0], texts))
    np.testing.assert_allclose(np.stack(singles), expected, atol=1e-4)


def test_rerank_over_serve_matches_in_process(serve_url, models):
    from bunko.models.rerank import CrossEncoderReranker

    passages = ["売上高は前年比で増加した。", "電源を切ってから掃除をしてください。", "Sources: page 12"]
    remote = HttpReranker(serve_url, timeout_s=60)
    scores = remote.score("売上高はどうなった？", passages)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    local = CrossEncoderReranker(str(models["reranker"]), device="cpu")
    np.testing.assert_allclose(scores, local.score("売上高はどうなった？", passages), atol=1e-4)
    assert remote.model_id == str(models["reranker"])


def _page(dpi: int) -> Image.Image:
    scale = dpi / 72
    img = Image.new("RGB", (int(420 * scale), int(120 * scale)), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, int(18 * scale))
    for i, line in enumerate(LINES):
        draw.text((int(20 * scale), int((20 + 40 * i) * scale)), line, fill="black", font=font)
    return img


def test_ocr_reads_a_rendered_japanese_page(serve_url):
    ocr = HttpOcrEngine(serve_url, timeout_s=120)
    assert ocr.version.startswith("rapidocr-")
    result = ocr.recognize(_page(200), dpi=200)
    assert result.engine == "rapidocr"
    text = result.markdown.replace("\n", "")
    for line in LINES:
        hits = sum(ch in text for ch in line)
        assert hits >= 0.8 * len(line), (line, result.markdown)
    assert result.confidence > 0.5
    # Boxes come back in page points: inside the 420 × 120 pt page whatever the dpi.
    for block in result.blocks:
        x0, y0, x1, y1 = block.bbox
        assert 0 <= x0 < x1 <= 421 and 0 <= y0 < y1 <= 121


def test_ocr_rejects_a_non_image_with_a_clear_error(serve_url):
    ocr = HttpOcrEngine(serve_url, timeout_s=60)
    with pytest.raises(InvalidInput, match="PNG/JPEG"):
        ocr.endpoint.call("POST", "/", {"image_b64": "aGVsbG8=", "dpi": 200})


def test_llm_streams_an_answer_through_serve(serve_url):
    from bunko.generate.openai_client import OpenAIChatClient

    client = OpenAIChatClient(f"{serve_url}/llm/v1", model="", timeout_s=60)
    assert client.model_id == "tiny-qwen2"
    messages = [ChatMessage("system", "文書に基づいて答えてください。"), ChatMessage("user", "売上高は？")]
    pieces = list(client.stream(messages, max_tokens=20, stop=["[END]"], temperature=0.0))
    assert len(pieces) > 1, "the answer should arrive in several pieces"
    r = httpx.post(
        f"{serve_url}/llm/v1/chat/completions",
        json={
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": 20,
            "temperature": 0,
        },
        timeout=60,
    )
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "".join(pieces)


def test_a_replica_continues_the_callers_trace(serve_cluster):
    """A worker's call to Serve carries ``traceparent`` (httpx's instrumentation); the replica's
    own span is in that trace, below the caller's span, exported by the replica itself."""
    import secrets

    from tests.support.polling import wait_for

    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    r = httpx.post(serve_cluster.url + "/embed/", json={"texts": ["文庫の質問"], "kind": "query"}, timeout=60,
                   headers={"traceparent": f"00-{trace_id}-{caller}-01"})
    assert r.status_code == 200, r.text
    # Until the SERVER span is in: the replica's exporter may send the request's inner spans
    # (FastAPI's http send/receive) in a batch before the one with the span that ends last.
    spans = wait_for(lambda: (got := [s for s in serve_cluster.spans.snapshot() if s.trace_id == trace_id])
                     and any(s.kind == 2 for s in got) and got,
                     timeout=30, what="the replica's SERVER span", died=lambda: None)
    (server,) = [s for s in spans if s.kind == 2]  # SERVER
    assert server.service == "bunko-serving"
    assert server.parent_id == caller
    assert server.name.startswith("POST")
    # Health checks are not traced (Serve and the kubelet ask all the time).
    httpx.get(serve_cluster.url + "/embed/health", timeout=30)
    assert not any(s.attributes.get("http.route") == "/health" or s.name.endswith("/health")
                   for s in serve_cluster.spans.snapshot())

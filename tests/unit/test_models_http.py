"""HTTP model clients: timeouts, retries with backoff, the circuit breaker, typed errors.

Servers are httpx's ``MockTransport`` (a real httpx transport answering from a function) or a
closed loopback port; no test waits on a real timeout.
"""

from __future__ import annotations

import socket
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from bunko.errors import InvalidInput, ModelUnavailable
from bunko.models.base import Embedder, OcrEngine, Reranker
from bunko.models.http import (
    CircuitBreaker,
    CircuitOpen,
    HttpEmbedder,
    HttpOcrEngine,
    HttpReranker,
    ModelEndpoint,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(handler):
    return httpx.Client(transport=httpx.MockTransport(handler))


def _endpoint(handler, **kw):
    sleeps: list[float] = []
    kw.setdefault("breaker", CircuitBreaker("test", failure_threshold=3, reset_after_s=30, clock=FakeClock()))
    ep = ModelEndpoint(
        "http://model.test/embed", timeout_s=5, client=_client(handler), sleep=sleeps.append, **kw
    )
    return ep, sleeps


def test_retries_5xx_with_exponential_backoff_then_succeeds():
    calls = []

    def handler(request):
        calls.append(request)
        return (
            httpx.Response(503, json={"error": {"message": "busy"}})
            if len(calls) < 3
            else httpx.Response(200, json={"ok": 1})
        )

    ep, sleeps = _endpoint(handler, retries=3, backoff_s=0.5)
    assert ep.call("POST", "/", {"x": 1}) == {"ok": 1}
    assert len(calls) == 3
    assert len(sleeps) == 2 and 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0
    assert ep.breaker.failures == 0


def test_gives_up_with_model_unavailable_naming_the_endpoint():
    ep, sleeps = _endpoint(lambda r: httpx.Response(502, text="bad gateway"), retries=2)
    with pytest.raises(ModelUnavailable, match=r"http://model.test/embed.*HTTP 502") as info:
        ep.call("GET", "/health")
    assert info.value.detail == {"endpoint": "http://model.test/embed/health"}
    assert len(sleeps) == 2


def test_connect_errors_are_retried_and_read_timeouts_are_not():
    calls = {"connect": 0, "read": 0}

    def connect_fail(request):
        calls["connect"] += 1
        raise httpx.ConnectError("refused", request=request)

    def read_timeout(request):
        calls["read"] += 1
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ModelUnavailable, match="ConnectError"):
        _endpoint(connect_fail, retries=2)[0].call("GET")
    with pytest.raises(ModelUnavailable, match="ReadTimeout"):
        _endpoint(read_timeout, retries=2)[0].call("GET")
    assert calls == {"connect": 3, "read": 1}


def test_4xx_is_invalid_input_and_does_not_trip_the_breaker():
    ep, _ = _endpoint(lambda r: httpx.Response(422, json={"error": {"message": "texts too long"}}))
    for _ in range(5):
        with pytest.raises(InvalidInput, match="texts too long"):
            ep.call("POST", "/", {})
    assert ep.breaker.state == "closed"


def test_breaker_opens_after_consecutive_failures_then_half_opens_after_cool_down():
    clock = FakeClock()
    breaker = CircuitBreaker("http://m", failure_threshold=3, reset_after_s=30, clock=clock)
    healthy = {"ok": False}
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(200, json={}) if healthy["ok"] else httpx.Response(500)

    ep, _ = _endpoint(handler, retries=0, breaker=breaker)
    for _ in range(3):
        with pytest.raises(ModelUnavailable):
            ep.call("GET")
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen, match=r"3 consecutive failures.*another 30 s"):
        ep.call("GET")
    assert len(calls) == 3, "an open breaker must not call the endpoint"

    clock.now += 31
    assert breaker.state == "half-open"
    with pytest.raises(ModelUnavailable):  # the trial call fails: open again at once
        ep.call("GET")
    assert breaker.state == "open" and len(calls) == 4

    clock.now += 31
    healthy["ok"] = True
    assert ep.call("GET") == {}
    assert breaker.state == "closed" and breaker.failures == 0


def test_half_open_lets_only_one_trial_through():
    clock = FakeClock()
    breaker = CircuitBreaker("http://m", failure_threshold=1, reset_after_s=10, clock=clock)
    breaker.record_failure("boom")
    clock.now += 11
    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_a_closed_port_fails_fast_not_hangs():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    embedder = HttpEmbedder(f"http://127.0.0.1:{port}", timeout_s=5, retries=1, backoff_s=0.01)
    start = time.monotonic()
    with pytest.raises(ModelUnavailable, match=f"127.0.0.1:{port}/embed"):
        embedder.embed_documents(["x"])
    assert time.monotonic() - start < 3


def _serve_models(request: httpx.Request) -> httpx.Response:
    import json

    path = request.url.path
    if path == "/embed/health":
        return httpx.Response(200, json={"status": "ok", "model": "tiny", "dim": 3})
    if path == "/embed/":
        body = json.loads(request.content)
        sign = 1.0 if body["kind"] == "query" else -1.0
        return httpx.Response(
            200, json={"vectors": [[sign, 0.0, 0.0]] * len(body["texts"]), "dim": 3, "model": "tiny"}
        )
    if path == "/rerank/health":
        return httpx.Response(200, json={"status": "ok", "model": "rr"})
    if path == "/rerank/":
        body = json.loads(request.content)
        return httpx.Response(200, json={"scores": [0.5] * len(body["passages"]), "model": "rr"})
    if path == "/ocr/health":
        return httpx.Response(
            200, json={"status": "ok", "engines": [{"name": "rapidocr", "version": "3.10"}]}
        )
    if path == "/ocr/":
        body = json.loads(request.content)
        assert body["dpi"] == 200 and body["image_b64"]
        return httpx.Response(
            200,
            json={
                "engine": "rapidocr",
                "version": "3.10",
                "markdown": "文庫",
                "confidence": 0.9,
                "blocks": [{"text": "文庫", "bbox": [1, 2, 3, 4], "confidence": 0.9, "kind": "text"}],
            },
        )
    return httpx.Response(404)


def _kw():
    return {"timeout_s": 5, "client": _client(_serve_models)}


def test_clients_implement_the_core_protocols_and_parse_answers():
    emb = HttpEmbedder("http://serve.test", request_batch=2, **_kw())
    rr = HttpReranker("http://serve.test", **_kw())
    ocr = HttpOcrEngine("http://serve.test", **_kw())
    assert isinstance(emb, Embedder) and isinstance(rr, Reranker) and isinstance(ocr, OcrEngine)
    assert (emb.model_id, emb.dim) == ("tiny", 3)
    docs = emb.embed_documents(["a", "b", "c"])  # two requests of 2 + 1
    assert docs.shape == (3, 3) and docs.dtype == np.float32 and docs[0, 0] == -1.0
    assert emb.embed_queries(["a"])[0, 0] == 1.0
    assert rr.score("q", ["p1", "p2"]) == [0.5, 0.5] and rr.score("q", []) == []
    assert ocr.version == "rapidocr-3.10"
    result = ocr.recognize(Image.new("RGB", (20, 20), "white"), dpi=200)
    assert result.engine == "rapidocr" and result.blocks[0].bbox == (1.0, 2.0, 3.0, 4.0)


def test_a_wrong_number_of_vectors_is_an_error_not_a_silent_mismatch():
    def handler(request):
        if request.url.path.endswith("/health"):
            return httpx.Response(200, json={"model": "m", "dim": 2})
        return httpx.Response(200, json={"vectors": [[1.0, 0.0]]})

    emb = HttpEmbedder("http://serve.test", timeout_s=5, client=_client(handler))
    with pytest.raises(ModelUnavailable, match="1 vectors for 2 texts"):
        emb.embed_documents(["a", "b"])

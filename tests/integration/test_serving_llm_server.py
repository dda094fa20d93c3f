"""The standalone transformers OpenAI-compatible server (no Ray), driven over real HTTP.

One server process for the module, on the tiny random-init Qwen2 model. Its output is noise, but
greedy decoding makes it deterministic, which is what these tests rely on.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from bunko.testing.servers import llm_server
from bunko.testing.tiny_models import make_tiny_llm

pytestmark = pytest.mark.slow

MESSAGES = [
    {"role": "system", "content": "文書に基づいて答えてください。"},
    {"role": "user", "content": "決算報告書の売上高は？"},
]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    model = make_tiny_llm(tmp_path_factory.mktemp("models") / "tiny-qwen2")
    with llm_server(model, served_model_name="tiny-qwen2") as url:
        yield url


@pytest.fixture(scope="module")
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=60) as c:
        yield c


def _complete(http, **extra):
    r = http.post("/v1/chat/completions", json={"messages": MESSAGES, "temperature": 0, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def _stream(http, **extra):
    """Return (parsed chunks, raw data lines) of a streamed completion."""
    body = {"messages": MESSAGES, "temperature": 0, "stream": True, **extra}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert all(ln.startswith("data: ") for ln in lines), lines
    assert lines[-1] == "data: [DONE]"
    return [json.loads(ln[len("data: ") :]) for ln in lines[:-1]], lines


def _stream_text(chunks):
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def _stop_candidate(text: str) -> str:
    """A two-character run from the middle of ``text`` made of ordinary characters."""
    for i in range(len(text) // 3, len(text) - 2):
        piece = text[i : i + 2]
        if all(ch.isprintable() and ch != "\ufffd" and not ch.isspace() for ch in piece):
            return piece
    pytest.fail(f"no usable stop sequence in {text!r}")


def test_health_and_models(http):
    assert http.get("/health").status_code == 200
    models = http.get("/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["tiny-qwen2"]


def test_non_streaming_completion_honours_max_tokens(http):
    body = _complete(http, max_tokens=12)
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "tiny-qwen2"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"]
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 12
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 12


def test_streaming_matches_non_streaming(http):
    full = _complete(http, max_tokens=24)["choices"][0]["message"]["content"]
    chunks, _ = _stream(http, max_tokens=24, stream_options={"include_usage": True})
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len({c["id"] for c in chunks}) == 1
    content_chunks = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) > 1, "the answer should arrive in several pieces"
    assert _stream_text(chunks) == full
    finals = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert [c["choices"][0]["finish_reason"] for c in finals] == ["length"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 24


def test_stop_sequence_cuts_output_streaming_and_not(http):
    full = _complete(http, max_tokens=40)["choices"][0]["message"]["content"]
    stop = _stop_candidate(full)
    expected = full[: full.index(stop)]

    body = _complete(http, max_tokens=40, stop=[stop, "never-appears"])
    assert body["choices"][0]["message"]["content"] == expected
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] < 40

    chunks, _ = _stream(http, max_tokens=40, stop=stop)
    assert _stream_text(chunks) == expected
    assert stop not in _stream_text(chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_sampling_is_reproducible_with_a_seed(http):
    a = _complete(http, max_tokens=16, temperature=1.2, seed=7)["choices"][0]["message"]["content"]
    b = _complete(http, max_tokens=16, temperature=1.2, seed=7)["choices"][0]["message"]["content"]
    assert a == b


def test_openai_client_streams_from_it(base_url):
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", timeout=60)
    stream = client.chat.completions.create(
        model="tiny-qwen2", messages=MESSAGES, max_tokens=10, temperature=0, stream=True
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces)
    done = client.chat.completions.create(model="anything", messages=MESSAGES, max_tokens=10, temperature=0)
    assert done.choices[0].message.content == "".join(pieces)
    assert done.model == "tiny-qwen2"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": []}, "messages"),
        ({"messages": MESSAGES, "max_tokens": 100_000}, "context length"),
        ({"messages": MESSAGES, "n": 2}, "n"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
    ],
)
def test_bad_requests_get_openai_errors(http, body, needle):
    for stream in (False, True):
        r = http.post("/v1/chat/completions", json={**body, "stream": stream})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error"
        assert needle in err["message"]


def test_proxy_engine_relays_streaming_and_plain_answers(base_url):
    from fastapi.testclient import TestClient

    from bunko.serving.llm_proxy import build_proxy_app

    app = build_proxy_app(f"{base_url}/v1", upstream_model="tiny-qwen2", served_model_name="front")
    with TestClient(app) as proxy:  # one event loop for the app's upstream client, as under uvicorn
        _check_proxy(proxy, base_url)


def _check_proxy(proxy, base_url):
    assert proxy.get("/health").status_code == 200
    body = {"messages": MESSAGES, "max_tokens": 12, "temperature": 0}
    direct = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=60).json()
    plain = proxy.post("/v1/chat/completions", json={**body, "model": "front"}).json()
    assert plain["model"] == "front"
    assert plain["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"]
    with proxy.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    assert _stream_text(chunks) == direct["choices"][0]["message"]["content"]


def test_proxy_reports_an_unreachable_upstream():
    from fastapi.testclient import TestClient

    from bunko.serving.llm_proxy import build_proxy_app
    from bunko.testing.servers import free_port

    with TestClient(build_proxy_app(f"http://127.0.0.1:{free_port()}/v1", upstream_model="m")) as proxy:
        assert proxy.get("/health").status_code == 502
        r = proxy.post("/v1/chat/completions", json={"messages": MESSAGES})
        assert r.status_code == 502 and "unreachable" in r.json()["error"]["message"]

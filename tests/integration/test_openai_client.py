"""The streaming chat client against a real OpenAI-compatible server process.

The server is the project's own ``bunko.serving.llm_transformers`` serving a tiny test-made
``Qwen2ForCausalLM`` (random weights, greedy decoding, so its output is deterministic noise). The
failure modes (nothing listening, a server that accepts and never answers, 5xx, 4xx) and the SSE
dialects of other servers are exercised against small real sockets as well.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
import time
from typing import ClassVar

import httpx
import pytest

from bunko.errors import ModelUnavailable
from bunko.generate.openai_client import LlmRequestRejected, OpenAIChatClient
from bunko.models.base import ChatMessage
from bunko.testing.servers import free_port

pytestmark = pytest.mark.slow

MESSAGES = [ChatMessage("system", "簡潔に答えてください。"), ChatMessage("user", "売上高は？")]


def _plain_completion(base: str, max_tokens: int) -> str:
    """The same request, not streamed: the reference text for the streamed one."""
    body = {"model": "tiny-qwen", "max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": m.role, "content": m.content} for m in MESSAGES]}
    resp = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)
    resp.raise_for_status()
    return str(resp.json()["choices"][0]["message"]["content"])


def _stop_candidate(text: str) -> tuple[str, str]:
    """A 2-character piece from the middle of ``text`` and the text before its first occurrence."""
    for k in range(len(text) // 3, len(text) - 2):
        stop = text[k : k + 2]
        if stop.strip() and text.find(stop) > 0:
            return stop, text[: text.find(stop)]
    pytest.fail(f"the tiny model's output is too short to pick a stop sequence from: {text!r}")


def test_streams_tokens_that_add_up_to_the_full_answer(llm_server):
    client = OpenAIChatClient(f"{llm_server}/v1", model="tiny-qwen", timeout_s=60)
    pieces = list(client.stream(MESSAGES, max_tokens=40, stop=[]))
    reference = _plain_completion(llm_server, 40)
    assert len(pieces) > 1, "the answer must arrive in several pieces, not at once"
    assert all(pieces), "empty deltas (the role-only first chunk) must not be yielded"
    assert "".join(pieces) == reference
    client.close()


def test_base_url_without_v1_and_model_discovered(llm_server):
    client = OpenAIChatClient(llm_server, model="", timeout_s=60)
    assert client.model_id == "tiny-qwen"
    assert "".join(client.stream(MESSAGES, max_tokens=10, stop=[])) == _plain_completion(llm_server, 10)


def test_stop_sequence_is_honoured(llm_server):
    full = _plain_completion(llm_server, 60)
    stop, expected = _stop_candidate(full)
    client = OpenAIChatClient(llm_server, model="tiny-qwen", timeout_s=60)
    assert "".join(client.stream(MESSAGES, max_tokens=60, stop=["[END]", stop])) == expected


def test_stop_sequences_beyond_what_the_server_is_sent_are_enforced_by_the_client(llm_server):
    # Only four stop strings go to the server (OpenAI's limit); the fifth is cut client-side.
    full = _plain_completion(llm_server, 60)
    stop, expected = _stop_candidate(full)
    client = OpenAIChatClient(llm_server, model="tiny-qwen", timeout_s=60)
    stops = ["[END]", "参考文献:", "Sources:", "\x00never", stop]
    assert "".join(client.stream(MESSAGES, max_tokens=60, stop=stops)) == expected


def test_rejected_request_raises_with_the_server_message(llm_server):
    client = OpenAIChatClient(llm_server, model="tiny-qwen", timeout_s=60)
    with pytest.raises(LlmRequestRejected) as info:
        list(client.stream(MESSAGES, max_tokens=1_000_000, stop=[]))
    assert "maximum context length" in info.value.message
    assert info.value.detail["status"] == 400


def test_server_down_is_model_unavailable_at_once():
    port = free_port()  # nothing listens there
    client = OpenAIChatClient(f"http://127.0.0.1:{port}/v1", model="m", timeout_s=30)
    start = time.monotonic()
    with pytest.raises(ModelUnavailable, match="cannot reach"):
        list(client.stream(MESSAGES, max_tokens=10, stop=[]))
    assert time.monotonic() - start < 3


def test_silent_server_times_out_instead_of_hanging():
    # A socket that accepts connections (the kernel's backlog) but never answers a byte.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        client = OpenAIChatClient(f"http://127.0.0.1:{port}", model="m", timeout_s=1.0)
        start = time.monotonic()
        with pytest.raises(ModelUnavailable, match="did not answer within 1 s"):
            list(client.stream(MESSAGES, max_tokens=10, stop=[]))
        assert time.monotonic() - start < 5


class _CannedHandler(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b""
    requests: ClassVar[list[dict]] = []

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        type(self).requests.append(
            {"headers": dict(self.headers), "body": json.loads(self.rfile.read(length))}
        )
        self.send_response(self.status)
        self.send_header("Content-Type", "text/event-stream" if self.status == 200 else "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _canned_server(status: int, body: bytes):
    handler = type("Handler", (_CannedHandler,), {"status": status, "body": body, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_5xx_is_model_unavailable():
    with _canned_server(503, b'{"detail": "model is loading"}') as (url, _):
        client = OpenAIChatClient(url, model="m", timeout_s=5)
        with pytest.raises(ModelUnavailable, match="model is loading"):
            list(client.stream(MESSAGES, max_tokens=10, stop=[]))


def test_dialects_of_other_servers_are_tolerated_and_key_is_sent():
    # llama.cpp ("data:" without a space), Ollama (comments, null content), vLLM (role-only first
    # chunk, a usage chunk without choices), and finish_reason on an empty last delta.
    events = [
        ': ping',
        'data:{"choices":[{"index":0,"delta":{"role":"assistant"}}]}',
        'event: message',
        'data: {"choices":[{"index":0,"delta":{"content":"東京"},"finish_reason":null}]}',
        'data: {"choices":[{"index":0,"delta":{"content":null}}]}',
        'data: {"choices":[{"index":0,"delta":{"content":"です[EN"}}]}',
        'data: {"choices":[{"index":0,"delta":{"content":"D]余計"}}]}',
        'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
        'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
        'data: [DONE]',
    ]
    body = ("\n\n".join(events) + "\n\n").encode()
    with _canned_server(200, body) as (url, handler):
        client = OpenAIChatClient(f"{url}/v1/", model="m", api_key="sk-secret", timeout_s=5)
        assert "".join(client.stream(MESSAGES, max_tokens=10, stop=["[END]"])) == "東京です"
        assert "sk-secret" not in repr(client)
        sent = handler.requests[0]
        assert sent["headers"]["Authorization"] == "Bearer sk-secret"
        assert sent["body"]["stream"] is True and sent["body"]["stop"] == ["[END]"]


def test_error_event_mid_stream_is_model_unavailable():
    body = (
        'data: {"choices":[{"index":0,"delta":{"content":"途中"}}]}\n\n'
        'data: {"error":{"message":"CUDA out of memory"}}\n\n'
        "data: [DONE]\n\n"
    ).encode()
    with _canned_server(200, body) as (url, _):
        client = OpenAIChatClient(url, model="m", timeout_s=5)
        got: list[str] = []
        with pytest.raises(ModelUnavailable, match="CUDA out of memory"):
            for piece in client.stream(MESSAGES, max_tokens=10, stop=[]):
                got.append(piece)
        assert got == ["途中"]


"""A scripted OpenAI-compatible chat server for the web page's end-to-end tests.

The machine has no real LLM, and the page's job is to show a streamed answer with citations, so the
bunko server under test talks to this stand-in over real HTTP, exactly as it would to vLLM: it reads
the numbered context blocks the prompt carries, picks the line that shares most characters with
the question, and streams it back a few characters at a time (with a pause between chunks, so the
browser sees the answer grow), cited as ``[文書N]`` and ended with ``[END]``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHUNK_CHARS = 3
CHUNK_DELAY_S = 0.04
_BLOCK = re.compile(r"\[文書(\d+)[:：][^\]\n]*\]\n(.*?)(?=\n\[文書\d+[:：]|\n質問[:：]|\Z)", re.DOTALL)
_QUESTION = re.compile(r"質問[:：]\s*(.+)")


def compose_answer(prompt: str) -> str:
    found = _QUESTION.search(prompt)
    question = found.group(1).strip() if found else ""
    wanted = {question[i:i + 2] for i in range(len(question) - 1)}
    best: tuple[int, str, str] = (-1, "", "1")
    for m in _BLOCK.finditer(prompt):
        for line in m.group(2).splitlines():
            line = line.strip(" |#")
            if not line:
                continue
            score = sum(1 for i in range(len(line) - 1) if line[i:i + 2] in wanted)
            if score > best[0]:
                best = (score, line, m.group(1))
    if best[0] <= 0:
        return "文書の中に該当する情報は見つかりませんでした。"
    return f"{best[1]} [文書{best[2]}]"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        return

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        messages = body.get("messages", [])
        prompt = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
        answer = compose_answer(prompt)
        if not body.get("stream"):
            self._json(200, {"id": "x", "object": "chat.completion", "model": "scripted",
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": answer}}]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

        def send(chunk: dict[str, Any] | str) -> None:
            payload = chunk if isinstance(chunk, str) else json.dumps(chunk, ensure_ascii=False)
            self.wfile.write(f"data: {payload}\n\n".encode())
            self.wfile.flush()

        base = {"id": "x", "object": "chat.completion.chunk", "model": "scripted"}
        send({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        for i in range(0, len(answer), CHUNK_CHARS):
            time.sleep(CHUNK_DELAY_S)
            send({**base, "choices": [{"index": 0, "delta": {"content": answer[i:i + CHUNK_CHARS]},
                                       "finish_reason": None}]})
        send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        send("[DONE]")
        self.close_connection = True


@contextmanager
def scripted_llm() -> Iterator[str]:
    """Serve on a free loopback port; yields the base URL (``http://127.0.0.1:PORT/v1``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="scripted-llm", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()

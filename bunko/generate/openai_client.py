"""A streaming client for OpenAI-compatible ``/v1/chat/completions`` servers.

Tested against vLLM, Ray Serve LLM, Ollama (``/v1``) and llama.cpp's server, which all speak
"the OpenAI API" but differ in the details this client tolerates:

- the base URL may or may not end in ``/v1``;
- SSE lines are ``data: {...}`` or ``data:{...}``; comments (``: ping``), ``event:`` lines and blank
  lines appear; the end is ``data: [DONE]``, or just the end of the body;
- the first chunk often carries only ``{"role": "assistant"}``; later deltas may have
  ``content: null`` or no content (tool/reasoning fields, usage-only chunks with no choices);
- ``finish_reason`` arrives on the last content chunk or on an empty one after it;
- some servers ignore ``stop``, cap how many stop strings they accept, or emit the stop text
  before noticing it. Stop sequences are therefore also enforced here, on the streamed text;
- errors come as ``{"error": {"message": ...}}``, ``{"error": "..."}``, ``{"detail": ...}`` or
  ``{"message": ...}``, and mid-stream as a ``data:`` line holding an ``error`` object.

Failures are mapped once: cannot connect, timeouts, dropped streams and 5xx are
``ModelUnavailable`` (retry later); 4xx is ``LlmRequestRejected`` carrying the server's message
(fix the request or the configuration). The API key is sent as a bearer header and never logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx

from bunko.errors import BunkoError, ModelUnavailable
from bunko.models.base import ChatMessage

log = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 500


class LlmRequestRejected(BunkoError):
    """The LLM server refused the request (4xx): wrong model name, bad key, prompt too long."""

    code = "llm_request_rejected"
    http_status = 502


def _chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


def _server_message(body: bytes | str) -> str:
    """The human part of an error body, whatever shape the server used."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text.strip()[:_MAX_ERROR_CHARS] or "(empty response body)"
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("msg") or json.dumps(value, ensure_ascii=False)
            if value:
                return str(value)[:_MAX_ERROR_CHARS]
    return text.strip()[:_MAX_ERROR_CHARS]


def _delta_text(chunk: dict[str, Any]) -> tuple[str, str | None]:
    """(content text, finish_reason) of one streamed chunk; ("", None) for role-only/usage chunks."""
    choices = chunk.get("choices") or []
    if not choices:
        return "", None
    choice = choices[0] or {}
    delta = choice.get("delta") or choice.get("message") or {}
    text = delta.get("content") if isinstance(delta, dict) else None
    if text is None:
        text = choice.get("text")  # completions-style chunks from older llama.cpp builds
    return (text if isinstance(text, str) else ""), choice.get("finish_reason")


class _StopFilter:
    """Cuts a token stream at the first stop sequence, even one split across tokens.

    Text that might be the start of a stop sequence is held back until it is known not to be.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.buffer += text
        cut = min((i for i in (self.buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            out, self.buffer, self.stopped = self.buffer[:cut], "", True
            return out
        safe = max(len(self.buffer) - self.hold, 0)
        # Hold back only a tail that could still grow into a stop sequence.
        while safe < len(self.buffer) and not any(
            s.startswith(self.buffer[safe:]) for s in self.stops
        ):
            safe += 1
        out, self.buffer = self.buffer[:safe], self.buffer[safe:]
        return out

    def flush(self) -> str:
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out


class OpenAIChatClient:
    """``ChatModel`` over an OpenAI-compatible server. Thread-safe; one connection pool per client."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        if not base_url:
            raise BunkoError("the LLM base URL is empty; set BUNKO_LLM_URL (e.g. http://vllm:8000/v1)")
        self.base_url = base_url
        self.url = _chat_url(base_url)
        self._model = model
        self.timeout_s = timeout_s
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # The read timeout is the longest silence allowed between two chunks, not the whole answer.
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
        )

    def __repr__(self) -> str:  # no key in reprs that end up in logs or tracebacks
        return f"OpenAIChatClient(url={self.url!r}, model={self._model!r})"

    @property
    def model_id(self) -> str:
        if not self._model:
            self._model = self._discover_model()
        return self._model

    @model_id.setter
    def model_id(self, value: str) -> None:
        self._model = value

    def close(self) -> None:
        self._client.close()

    def _discover_model(self) -> str:
        """The server's first model, for servers that serve one and were configured without a name."""
        url = self.url.rsplit("/chat/completions", 1)[0] + "/models"
        try:
            resp = self._client.get(url)
        except httpx.HTTPError as e:
            raise ModelUnavailable(f"cannot reach the LLM server at {url}: {type(e).__name__}: {e}") from e
        if resp.status_code >= 400:
            raise LlmRequestRejected(
                f"BUNKO_LLM_MODEL is not set and {url} answered {resp.status_code}: "
                f"{_server_message(resp.content)}; set BUNKO_LLM_MODEL to the served model name"
            )
        data = resp.json().get("data") or []
        if not data or not data[0].get("id"):
            raise LlmRequestRejected(f"BUNKO_LLM_MODEL is not set and {url} lists no models")
        return str(data[0]["id"])

    def stream(
        self, messages: list[ChatMessage], *, max_tokens: int, stop: list[str], temperature: float = 0.0
    ) -> Iterator[str]:
        payload: dict[str, Any] = {
            "model": self.model_id,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
        }
        if stop:
            payload["stop"] = stop[:4]  # the OpenAI limit; the filter below enforces all of them
        stops = _StopFilter(stop)
        log.debug("chat completion: url=%s model=%s messages=%d", self.url, payload["model"], len(messages))
        try:
            with self._client.stream("POST", self.url, json=payload) as resp:
                if resp.status_code >= 400:
                    self._raise_for_status(resp)
                for chunk in self._events(resp):
                    text, finish = _delta_text(chunk)
                    out = stops.feed(text) if text else ""
                    if out:
                        yield out
                    if stops.stopped or finish:
                        break
        except httpx.TimeoutException as e:
            raise ModelUnavailable(
                f"the LLM server at {self.url} did not answer within {self.timeout_s:g} s "
                f"({type(e).__name__}); it may be overloaded or still loading the model"
            ) from e
        except (httpx.TransportError, httpx.StreamError) as e:
            raise ModelUnavailable(
                f"cannot reach the LLM server at {self.url}: {type(e).__name__}: {e}"
            ) from e
        tail = stops.flush()
        if tail:
            yield tail

    def _raise_for_status(self, resp: httpx.Response) -> None:
        message = _server_message(resp.read())
        if resp.status_code >= 500:
            raise ModelUnavailable(f"the LLM server at {self.url} failed ({resp.status_code}): {message}")
        raise LlmRequestRejected(
            f"the LLM server at {self.url} rejected the request ({resp.status_code}): {message}",
            detail={"status": resp.status_code, "model": self._model},
        )

    def _events(self, resp: httpx.Response) -> Iterator[dict[str, Any]]:
        """The JSON objects of an SSE body (or of NDJSON, which some servers send instead)."""
        for raw in resp.iter_lines():
            line = raw.strip()
            if not line or line.startswith(":") or line.startswith(("event:", "id:", "retry:")):
                continue
            if line.startswith("data:"):
                line = line[5:].strip()
            if line == "[DONE]":
                return
            try:
                obj = json.loads(line)
            except ValueError:
                log.debug("skipping a non-JSON stream line from %s: %.80s", self.url, line)
                continue
            if not isinstance(obj, dict):
                continue
            if obj.get("error"):
                raise ModelUnavailable(
                    f"the LLM server at {self.url} failed while answering: {_server_message(json.dumps(obj))}"
                )
            yield obj

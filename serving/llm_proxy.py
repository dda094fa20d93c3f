"""The ``proxy`` LLM engine: an OpenAI-compatible front that forwards to an upstream server.

For an LLM that already runs elsewhere (Ollama, an existing vLLM, a hosted API): Bunko's clients
keep one URL (``/llm/v1``) whatever serves the model. Requests are forwarded as they come, with
``model`` replaced by the upstream model name; streamed answers are relayed chunk by chunk, never
buffered. ``GET /health`` is 200 only while the upstream answers ``GET /models``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from bunko.serving.openai_protocol import error_body


def build_proxy_app(
    upstream_url: str,
    *,
    upstream_model: str,
    served_model_name: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 300.0,
) -> FastAPI:
    base = upstream_url.rstrip("/")
    name = served_model_name or upstream_model
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    timeout = httpx.Timeout(timeout_s, connect=10.0)
    client = httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout)
    app = FastAPI(title="Bunko LLM (proxy)", docs_url=None, redoc_url=None)

    def unreachable(exc: Exception) -> JSONResponse:
        return JSONResponse(
            error_body(
                f"the upstream LLM at {base} is unreachable: {type(exc).__name__}: {exc}",
                type_="server_error",
                code="upstream_unavailable",
            ),
            status_code=502,
        )

    @app.get("/health")
    async def health() -> Response:
        try:
            r = await client.get("/models", timeout=5.0)
        except httpx.HTTPError as exc:
            return unreachable(exc)
        if r.status_code >= 400:
            return JSONResponse(
                error_body(f"the upstream LLM at {base} answered {r.status_code}", type_="server_error"),
                status_code=502,
            )
        return JSONResponse({"status": "ok", "model": name, "upstream": base})

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "proxy"}],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Response:
        body = await request.json()
        body["model"] = upstream_model
        if not body.get("stream"):
            try:
                r = await client.post("/chat/completions", json=body)
            except httpx.HTTPError as exc:
                return unreachable(exc)
            content = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
            if isinstance(content, dict) and "model" in content:
                content["model"] = name
            if content is None:
                return Response(
                    r.content, status_code=r.status_code, media_type=r.headers.get("content-type")
                )
            return JSONResponse(content, status_code=r.status_code)

        req = client.build_request("POST", "/chat/completions", json=body)
        try:
            upstream = await client.send(req, stream=True)
        except httpx.HTTPError as exc:
            return unreachable(exc)
        if upstream.status_code >= 400:
            data = await upstream.aread()
            await upstream.aclose()
            return Response(
                data,
                status_code=upstream.status_code,
                media_type=upstream.headers.get("content-type", "application/json"),
            )

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            finally:
                await upstream.aclose()

        return StreamingResponse(
            relay(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.on_event("shutdown")
    async def _close() -> None:
        await client.aclose()

    return app


def api_key_from_env(var: str | None) -> str | None:
    return os.environ.get(var) if var else None

"""Per-request plumbing as plain ASGI middleware (streaming-safe, no BaseHTTPMiddleware):
request id, security headers, metrics and one structured log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bunko import metrics
from bunko.api.jsonlog import request_id_var

log = logging.getLogger("bunko.api.access")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# The web page is served by the api itself with no external CDN, so 'self' is all it needs.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)


def security_headers(production: bool) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if production:  # TLS terminates at the ingress; browsers ignore HSTS on plain http anyway
        headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
    return headers


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, production: bool = False) -> None:
        self.app = app
        self.headers = security_headers(production)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        start = time.perf_counter()
        status = 500
        first_byte: float | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, first_byte
            if message["type"] == "http.response.start":
                status = int(message["status"])
                first_byte = time.perf_counter()
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = rid
                for k, v in self.headers:
                    if k.decode() not in headers:
                        headers.append(k.decode(), v.decode())
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = (first_byte or time.perf_counter()) - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "WS") if scope["type"] == "http" else "WS"
            if scope["type"] == "http":
                metrics.http_requests_total.labels(method, template, str(status)).inc()
                metrics.http_request_duration_seconds.labels(method, template).observe(elapsed)
            log.info(
                "request",
                extra={"method": method, "path": scope.get("path", ""), "route": template,
                       "status": status, "duration_ms": round(elapsed * 1000, 2),
                       "user": scope.get("state", {}).get("user_id", "")},
            )
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Request body limits, answered in the API's error shape: a declared Content-Length over the
    limit is refused before a byte is read; a body that grows past it while streaming (chunked, or
    lying about its length) stops with a 413 raised from ``receive``.

    ``limits`` pairs (method, path regex) with a larger limit (the upload route); every other
    request gets ``default``.
    """

    def __init__(self, app: ASGIApp, *, default: int,
                 limits: list[tuple[str, re.Pattern[str], int]] | None = None) -> None:
        self.app = app
        self.default = default
        self.limits = limits or []

    def _limit(self, scope: Scope) -> int:
        method, path = scope.get("method", ""), scope.get("path", "")
        for m, pattern, limit in self.limits:
            if m == method and pattern.match(path):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(status_code=413, detail=_too_large_message(limit))
            return message

        await self.app(scope, limited_receive, send)


def _too_large_message(limit: int) -> str:
    return f"the request body is larger than the limit of {limit} bytes"


def _too_large(limit: int) -> JSONResponse:
    from bunko.api.errors import error_body

    return JSONResponse(error_body("too_large", _too_large_message(limit), {"max_bytes": limit}),
                        status_code=413, headers={"Connection": "close"})

"""One error shape everywhere: ``{"error": {"code", "message", "detail"}}``.

``BunkoError`` maps by its own ``http_status`` / ``code``; HTTP errors raised by the framework (404
route, 405, 413 body limit) and validation errors keep their status in the same shape; anything
else is a 500 with a generic message and the request id — the trace goes to the log, never out.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bunko.api.jsonlog import request_id_var
from bunko.errors import BunkoError, RateLimited, Unavailable

log = logging.getLogger("bunko.api")

_HTTP_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "too_large",
    415: "unsupported_media_type", 422: "invalid_input", 429: "rate_limited",
}


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail}}


def error_response(status: int, code: str, message: str, detail: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, detail), status_code=status, headers=headers)


def public_error(exc: BunkoError) -> dict[str, Any]:
    """What a client may see of a core error. 4xx messages are written for users; a 5xx other than
    "a dependency is down" may carry internals (a child process's output, a path), so its message
    is replaced by a generic one and the original goes to the log, tied by the request id."""
    if exc.http_status >= 500 and not isinstance(exc, Unavailable):
        log.error("request failed: %s: %s", exc.code, exc.message)
        return {"code": exc.code, "message": "internal error; report the request id to the operator",
                "detail": {"request_id": request_id_var.get()}}
    if exc.http_status >= 500:
        log.warning("dependency unavailable: %s: %s", exc.code, exc.message)
    return {"code": exc.code, "message": exc.message, "detail": _jsonable(exc.detail)}


async def _bunko_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BunkoError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    if exc.http_status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"error": public_error(exc)}, status_code=exc.http_status, headers=headers)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _HTTP_CODES.get(status, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(status, code, message, None, dict(exc.headers or {}) or None)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | WebSocketRequestValidationError)
    # ``input`` and ``ctx`` are dropped: they can echo what the client sent (a password, say).
    problems = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
         "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(p['loc'][1:]) or p['loc'][0] if p['loc'] else 'body'}: {p['msg']}"
                        for p in problems[:5])
    return error_response(422, "invalid_input", f"invalid request: {summary}", problems)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The database is down or unreachable: a 503 the client can retry, not a 500 with a trace.
    Anything else from the driver (a constraint, a bad statement) is a bug: a plain 500."""
    lost = isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)
    if not lost:
        return await _unexpected(request, exc)
    log.warning("database unavailable: %s", type(getattr(exc, "orig", exc)).__name__)
    return error_response(503, "store_unavailable",
                          "the database is unreachable; retry in a few seconds",
                          {"request_id": getattr(request.state, "request_id", "")},
                          headers={"Retry-After": "5"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "")
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return error_response(500, "internal_error",
                          "internal error; report the request id to the operator",
                          {"request_id": request_id})


def _jsonable(detail: Any) -> Any:
    from fastapi.encoders import jsonable_encoder

    try:
        return jsonable_encoder(detail)
    except Exception:  # a detail that cannot be encoded is dropped rather than turned into a 500
        return None


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BunkoError, _bunko_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)
    app.add_exception_handler(Exception, _unexpected)

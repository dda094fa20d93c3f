"""Questions: one JSON answer, a Server-Sent Events stream, and the same events over a WebSocket.

Stream events (SSE ``event:`` names and the WebSocket ``type`` field): ``token`` (``text``), then
``sources`` (``sources``), then ``done`` (``answer``: the full record, as ``POST /api/v1/query``
returns it); ``error`` (``error``: the usual error object) if it fails midway.

WebSocket authentication: the access token is sent in the **first message**,
``{"type": "auth", "token": "<access token>"}`` (an ``Authorization: Bearer`` header on the
handshake works too, for clients that can set one). Not a query parameter: URLs end up in proxy and
access logs. The server answers ``{"type": "ready"}``; then each message
``{"question": "...", "collection": "default", "filters": {...}}`` gets its stream of events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any, cast

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import iterate_in_threadpool

from bunko import audit
from bunko.access import Permission, has_permission
from bunko.api.deps import CurrentUser, Querier, RuntimeDep, authenticate_token, client_ip
from bunko.api.errors import public_error
from bunko.api.routes.collections import readable_collection
from bunko.api.schemas import AnswerOut, QueryFiltersIn, QueryRequest
from bunko.errors import AuthenticationError, BunkoError, PermissionDenied
from bunko.retrieve.types import QueryFilters
from bunko.runtime import Runtime

router = APIRouter(tags=["query"])
log = logging.getLogger("bunko.api.query")

WS_AUTH_TIMEOUT_S = 10.0


def to_filters(f: QueryFiltersIn | None) -> QueryFilters | None:
    if f is None:
        return None
    return QueryFilters(document_ids=list(f.document_ids), tags=list(f.tags), date_from=f.date_from,
                        date_to=f.date_to)


def observe_answer(rt: Runtime, user: CurrentUser, ip: str, answer: dict[str, Any], collection: str) -> None:
    # rag_queries_total and the stage timings are counted by bunko.qa itself.
    audit.record(rt, "query", actor=user.id, target=str(answer.get("query_id", "")), defer=True,
                 detail={"collection": collection, "mode": answer.get("mode"),
                         "cached": bool(answer.get("cached"))}, ip=ip)


def run_query(rt: Runtime, user: CurrentUser, body: QueryRequest, ip: str) -> AnswerOut:
    from bunko import qa

    # The collection is looked up and authorised once, here; qa takes the row.
    coll = readable_collection(rt, user, body.collection)
    answer = qa.ask(rt, body.question, principal=user.principal, collection=coll,
                    filters=to_filters(body.filters), use_cache=body.use_cache).to_dict()
    observe_answer(rt, user, ip, answer, coll.name)
    return AnswerOut.model_validate(answer)


def start_stream(rt: Runtime, user: CurrentUser, body: QueryRequest) -> tuple[str, Iterator[dict[str, Any]]]:
    """Check access and open the stream; errors before the first event surface as HTTP errors."""
    from bunko import qa

    coll = readable_collection(rt, user, body.collection)
    events = qa.ask_stream(rt, body.question, principal=user.principal, collection=coll,
                           filters=to_filters(body.filters), use_cache=body.use_cache)
    return coll.name, cast(Iterator[dict[str, Any]], events)


def _jsonable(event: dict[str, Any]) -> dict[str, Any]:
    from fastapi.encoders import jsonable_encoder

    out: dict[str, Any] = jsonable_encoder(event)
    return out


@router.post("/api/v1/query", response_model=AnswerOut)
def query(body: QueryRequest, user: Querier, rt: RuntimeDep, request: Request) -> AnswerOut:
    return run_query(rt, user, body, client_ip(request))


@router.post("/api/v1/query/stream", response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}}}})
async def query_stream(body: QueryRequest, user: Querier, rt: RuntimeDep,
                       request: Request) -> StreamingResponse:
    collection, events = await run_in_threadpool(start_stream, rt, user, body)
    # Pull the first event now: a refused question is a proper 4xx, not an event in a 200 stream.
    first = await run_in_threadpool(next, events, None)
    ip = client_ip(request)

    def sse() -> Iterator[bytes]:
        event = first
        try:
            while event is not None:
                if event.get("type") == "done":
                    observe_answer(rt, user, ip, dict(event.get("answer") or {}), collection)
                yield _sse(str(event.get("type", "message")), _jsonable(event))
                event = next(events, None)
        except BunkoError as exc:
            yield _sse("error", {"type": "error", "error": public_error(exc)})
        except Exception:
            log.exception("query stream failed")
            yield _sse("error", {"type": "error", "error": {
                "code": "internal_error", "message": "internal error", "detail": None}})

    return StreamingResponse(iterate_in_threadpool(sse()), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


# --- WebSocket ----------------------------------------------------------------------------------


async def _ws_authenticate(ws: WebSocket, rt: Runtime) -> tuple[CurrentUser, str]:
    header = ws.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token:
        msg = await asyncio.wait_for(ws.receive_json(), WS_AUTH_TIMEOUT_S)
        if not isinstance(msg, dict) or msg.get("type") != "auth" or not msg.get("token"):
            raise AuthenticationError('send {"type": "auth", "token": "<access token>"} first')
        token = str(msg["token"])
    request = Request({**ws.scope, "type": "http"})
    user = await run_in_threadpool(authenticate_token, request, rt, token)
    if not has_permission(user.role, Permission.query):
        raise PermissionDenied("your role may not ask questions")
    return user, token


@router.websocket("/v1/stream")
async def stream_ws(ws: WebSocket) -> None:
    rt: Runtime = ws.app.state.rt
    await ws.accept()
    try:
        user, token = await _ws_authenticate(ws, rt)
    except (BunkoError, TimeoutError, ValueError, WebSocketDisconnect) as exc:
        if isinstance(exc, BunkoError):
            await _ws_send_error(ws, public_error(exc))
        await _ws_close(ws, 4401 if not isinstance(exc, PermissionDenied) else 4403)
        return
    await ws.send_json({"type": "ready", "user": user.id, "role": user.role})
    ip = ws.client.host if ws.client else ""
    try:
        while True:
            raw = await ws.receive_json()
            try:
                body = QueryRequest.model_validate(raw)
                # Each question re-checks the token (expiry, logout) and counts against the limit.
                request = Request({**ws.scope, "type": "http"})
                user = await run_in_threadpool(authenticate_token, request, rt, token)
                collection, events = await run_in_threadpool(start_stream, rt, user, body)
                async for event in iterate_in_threadpool(events):
                    if event.get("type") == "done":
                        await run_in_threadpool(observe_answer, rt, user, ip,
                                                dict(event.get("answer") or {}), collection)
                    await ws.send_json(_jsonable(event))
            except ValidationError as exc:
                await _ws_send_error(ws, {"code": "invalid_input", "message": "invalid question message",
                                          "detail": [{"loc": list(map(str, e["loc"])), "msg": e["msg"]}
                                                     for e in exc.errors()]})
            except BunkoError as exc:
                await _ws_send_error(ws, public_error(exc))
                if isinstance(exc, AuthenticationError):
                    await _ws_close(ws, 4401)
                    return
    except WebSocketDisconnect:
        return
    except ValueError:  # not JSON
        await _ws_send_error(ws, {"code": "invalid_input", "message": "messages must be JSON",
                                  "detail": None})
        await _ws_close(ws, 1003)


async def _ws_send_error(ws: WebSocket, error: dict[str, Any]) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.send_json({"type": "error", "error": error})


async def _ws_close(ws: WebSocket, code: int) -> None:
    with contextlib.suppress(RuntimeError):
        await ws.close(code=code)

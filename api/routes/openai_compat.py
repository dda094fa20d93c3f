"""OpenAI-compatible chat completions: any OpenAI client can ask Bunko.

``model`` names a collection; the last user message is the question; the access token is the API
key (``OpenAI(base_url="https://bunko.example/v1", api_key=<access token>)``). Answers carry their
citations in an extra ``sources`` field (non-streaming: on the response; streaming: on the last
chunk), which OpenAI clients keep as an extra attribute.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import iterate_in_threadpool

from bunko import collections as colls
from bunko.access import can_read_collection
from bunko.api.deps import CollectionReader, Querier, RuntimeDep, client_ip
from bunko.api.errors import public_error
from bunko.api.routes.query import observe_answer, run_query, start_stream
from bunko.api.schemas import QueryRequest
from bunko.errors import BunkoError, InvalidQuery

router = APIRouter(prefix="/v1", tags=["openai"])


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str = ""


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[TextPart] | None = None


class ChatCompletionRequest(BaseModel):
    # Sampling parameters of the OpenAI API are accepted and ignored: the collection's pipeline decides.
    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=63)
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=256)
    stream: bool = False


def _question(req: ChatCompletionRequest) -> str:
    for msg in reversed(req.messages):
        if msg.role != "user":
            continue
        if isinstance(msg.content, str):
            return msg.content
        if msg.content:
            return "".join(p.text for p in msg.content if p.type == "text")
    raise InvalidQuery("the messages contain no user message to answer")


def _query(req: ChatCompletionRequest) -> QueryRequest:
    question = _question(req)
    if not question.strip():
        raise InvalidQuery("the last user message is empty")
    return QueryRequest.model_construct(question=question, collection=req.model, filters=None,
                                        use_cache=True)


@router.get("/models")
def list_models(user: CollectionReader, rt: RuntimeDep) -> dict[str, Any]:
    data = [{"id": c.name, "object": "model", "created": int(c.created_at.timestamp()),
             "owned_by": "bunko"}
            for c, _n in colls.list_collections(rt) if can_read_collection(user.principal, c)]
    return {"object": "list", "data": data}


@router.post("/chat/completions", responses={200: {"content": {"text/event-stream": {}}}})
async def chat_completions(req: ChatCompletionRequest, user: Querier, rt: RuntimeDep,
                           request: Request) -> Any:
    body = _query(req)
    ip = client_ip(request)
    created = int(time.time())
    if not req.stream:
        answer = await run_in_threadpool(run_query, rt, user, body, ip)
        return {
            "id": f"chatcmpl-{answer.query_id}", "object": "chat.completion", "created": created,
            "model": req.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.answer},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "sources": jsonable_encoder(answer.sources),
            "bunko": {"mode": answer.mode, "confidence": answer.confidence,
                      "cached": answer.cached, "processing_time_ms": answer.processing_time_ms},
        }

    collection, events = await run_in_threadpool(start_stream, rt, user, body)
    first = await run_in_threadpool(next, events, None)
    chunk_id = f"chatcmpl-{int(time.time() * 1000)}"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        payload = {"id": chunk_id, "object": "chat.completion.chunk", "created": created,
                   "model": req.model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                   **extra}
        return f"data: {json.dumps(jsonable_encoder(payload), ensure_ascii=False)}\n\n".encode()

    def sse() -> Iterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        sources: list[Any] = []
        event = first
        try:
            while event is not None:
                kind = event.get("type")
                if kind == "token":
                    yield chunk({"content": str(event.get("text", ""))})
                elif kind == "sources":
                    sources = list(event.get("sources") or [])
                elif kind == "done":
                    answer = dict(event.get("answer") or {})
                    observe_answer(rt, user, ip, answer, collection)
                    sources = answer.get("sources") or sources
                event = next(events, None)
            yield chunk({}, "stop", sources=sources)
        except BunkoError as exc:
            yield f"data: {json.dumps({'error': public_error(exc)}, ensure_ascii=False)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(iterate_in_threadpool(sse()), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

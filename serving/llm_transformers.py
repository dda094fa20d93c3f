"""An OpenAI-compatible chat-completions server on the ``transformers`` engine.

For small models on CPU (tests, laptops) and as the ``transformers`` engine of the Serve LLM
deployment, which mounts the same app with ``@serve.ingress``. It also runs on its own, without Ray::

    python -m bunko.serving.llm_transformers --model PATH --host 127.0.0.1 --port 8000

Routes
------
``POST /v1/chat/completions``
    OpenAI's request body (``messages``, ``max_tokens`` / ``max_completion_tokens``, ``stop``,
    ``temperature``, ``top_p``, ``seed``, ``stream``, ``stream_options.include_usage``; other fields
    are ignored; ``n`` must be 1). Non-streaming: a ``chat.completion`` object. ``stream: true``:
    Server-Sent Events, one ``chat.completion.chunk`` per ``data:`` line (the first carries
    ``delta.role``, the last ``finish_reason``), then ``data: [DONE]``. The request's ``model`` is not
    checked: the server serves one model and reports its name.
``GET /v1/models``
    The one served model.
``GET /health``
    200 once the model is loaded (the app is built after loading, so always).

Errors use OpenAI's body, ``{"error": {"message", "type", "param", "code"}}``, with status 400 for a
bad request (including a prompt longer than the model's context) and 500 for a failed generation;
an error during a stream arrives as a last ``data: {"error": ...}`` event before ``[DONE]``.

Generation runs ``model.generate`` in a thread with a ``TextIteratorStreamer`` (its asyncio variant),
one request at a time per model; stop sequences are cut from the text as it streams and end the
generation early, as does a client that goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from bunko.serving.gpu import cap_gpu_memory, torch_device, torch_dtype_for
from bunko.serving.openai_protocol import (
    ChatCompletionRequest,
    StopScanner,
    chunk_body,
    completion_body,
    completion_id,
    error_body,
    usage,
)

log = logging.getLogger(__name__)


class OpenAIRequestError(Exception):
    def __init__(
        self, message: str, *, status: int = 400, code: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param


@dataclass
class GenerationOutcome:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    error: BaseException | None = None


class TransformersChatEngine:
    """A causal LM and its tokenizer, loaded once; ``stream`` yields the visible text of one answer."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        served_model_name: str | None = None,
        device: str | None = None,
        gpu_memory_fraction: float | None = None,
        default_max_tokens: int = 512,
        stream_timeout_s: float = 300.0,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_path = str(model_path)
        self.model_name = served_model_name or Path(self.model_path).name or self.model_path
        self.device = torch_device(device)
        cap_gpu_memory(gpu_memory_fraction, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        model: Any = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch_dtype_for(self.device))
        self.model: Any = model.to(self.device).eval()
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 0) or 4096)
        self.default_max_tokens = default_max_tokens
        self.stream_timeout_s = stream_timeout_s
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        self.created = int(time.time())
        # One generation at a time: a single model on a CPU gains nothing from interleaving, and
        # concurrent generate() calls on one module are not something transformers promises to support.
        self._lock = threading.Lock()
        self._torch = torch

    # --- prompt ---------------------------------------------------------------------------------

    def prompt_ids(self, req: ChatCompletionRequest) -> list[int]:
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        ids: list[int] = self.tokenizer(str(text), add_special_tokens=False)["input_ids"]
        return ids

    def _max_new_tokens(self, req: ChatCompletionRequest, prompt_len: int) -> int:
        room = self.context_length - prompt_len
        if room < 1:
            raise OpenAIRequestError(
                f"This model's maximum context length is {self.context_length} tokens; the messages "
                f"use {prompt_len}. Shorten the messages.",
                code="context_length_exceeded",
                param="messages",
            )
        wanted = req.token_limit
        if wanted is not None and wanted > room:
            raise OpenAIRequestError(
                f"This model's maximum context length is {self.context_length} tokens; the messages use "
                f"{prompt_len} and max_tokens asks for {wanted}. Lower max_tokens to at most {room}.",
                code="context_length_exceeded",
                param="max_tokens",
            )
        return wanted if wanted is not None else min(self.default_max_tokens, room)

    # --- generation -----------------------------------------------------------------------------

    async def stream(
        self, req: ChatCompletionRequest, outcome: GenerationOutcome
    ) -> AsyncGenerator[str, None]:
        """Yield the answer's text piece by piece; ``outcome`` holds counts and finish_reason at the end.

        Raises ``OpenAIRequestError`` before the first piece for a bad request; a failure during
        generation is raised after the pieces produced so far.
        """
        from transformers import AsyncTextIteratorStreamer, StoppingCriteria, StoppingCriteriaList

        ids = self.prompt_ids(req)
        max_new = self._max_new_tokens(req, len(ids))
        outcome.prompt_tokens = len(ids)
        halt = threading.Event()

        class _Halt(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return halt.is_set()

        class _CountingStreamer(AsyncTextIteratorStreamer):
            generated = 0
            last_token: int | None = None

            def put(self, value: Any) -> None:
                if not (self.skip_prompt and self.next_tokens_are_prompt):
                    flat = value.reshape(-1)
                    self.generated += int(flat.numel())
                    if flat.numel():
                        self.last_token = int(flat[-1])
                super().put(value)

        streamer = _CountingStreamer(
            self.tokenizer, skip_prompt=True, timeout=self.stream_timeout_s, skip_special_tokens=True
        )
        torch = self._torch
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        sampling = req.temperature > 0
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": max_new,
            "do_sample": sampling,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Halt()]),
            "pad_token_id": self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else next(iter(self.eos_ids), None),
        }
        if sampling:
            kwargs.update(temperature=req.temperature, top_p=req.top_p)
        else:
            # Greedy: neutralise sampling fields a model's generation_config may carry.
            kwargs.update(temperature=None, top_p=None, top_k=None)

        def run() -> None:
            try:
                with self._lock, torch.inference_mode():
                    if halt.is_set():
                        streamer.on_finalized_text("", stream_end=True)
                        return
                    if req.seed is not None:
                        torch.manual_seed(req.seed)
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced to the request after the stream ends
                outcome.error = exc
                streamer.on_finalized_text("", stream_end=True)

        scanner = StopScanner(req.stop_sequences)
        thread = threading.Thread(target=run, name="bunko-llm-generate", daemon=True)
        thread.start()
        try:
            async for piece in streamer:
                visible = scanner.feed(piece)
                if visible:
                    yield visible
                if scanner.stopped:
                    halt.set()
                    break
            tail = scanner.flush()
            if tail:
                yield tail
        finally:
            # Also reached when the client disconnects: stop generating for nobody.
            halt.set()
        if scanner.stopped:
            # Drain so the thread can finish; the pieces after the stop sequence are dropped.
            async for _ in streamer:
                pass
        await asyncio.to_thread(thread.join)
        outcome.completion_tokens = streamer.generated
        if outcome.error is not None:
            raise outcome.error
        if scanner.stopped or streamer.last_token in self.eos_ids:
            outcome.finish_reason = "stop"
        elif streamer.generated >= max_new:
            outcome.finish_reason = "length"
        else:
            outcome.finish_reason = "stop"


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def build_openai_app(engine: TransformersChatEngine) -> FastAPI:
    """The FastAPI app for an already loaded engine (also what the Serve deployment mounts)."""
    app = FastAPI(title="Bunko LLM (transformers)", docs_url=None, redoc_url=None)

    @app.exception_handler(OpenAIRequestError)
    async def _request_error(_: Request, exc: OpenAIRequestError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, code=exc.code, param=exc.param), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
            for e in exc.errors()
        )
        return JSONResponse(error_body(f"Invalid request: {problems}"), status_code=400)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": engine.model_name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": engine.model_name, "object": "model", "created": engine.created, "owned_by": "bunko"}
            ],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(req: ChatCompletionRequest) -> JSONResponse | StreamingResponse:
        id_ = completion_id()
        outcome = GenerationOutcome()
        pieces: AsyncGenerator[str, None] = engine.stream(req, outcome)
        if not req.stream:
            try:
                text = "".join([p async for p in pieces])
            except OpenAIRequestError:
                raise
            except Exception as exc:
                log.exception("generation failed")
                return JSONResponse(
                    error_body(f"Generation failed: {exc}", type_="server_error"), status_code=500
                )
            return JSONResponse(
                completion_body(
                    id_=id_,
                    model=engine.model_name,
                    text=text,
                    finish_reason=outcome.finish_reason,
                    prompt_tokens=outcome.prompt_tokens,
                    completion_tokens=outcome.completion_tokens,
                )
            )

        # Validate before the 200 goes out: a bad request must get its 400, not an error event.
        first: str | None
        try:
            first = await anext(pieces)
        except StopAsyncIteration:
            first = None
        except OpenAIRequestError:
            raise
        except Exception as exc:
            log.exception("generation failed")
            return JSONResponse(
                error_body(f"Generation failed: {exc}", type_="server_error"), status_code=500
            )

        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        async def events() -> AsyncIterator[bytes]:
            created = int(time.time())
            chunk: dict[str, Any] = {"id_": id_, "model": engine.model_name, "created": created}
            yield _sse(chunk_body(**chunk, delta={"role": "assistant", "content": ""}))
            try:
                if first:
                    yield _sse(chunk_body(**chunk, delta={"content": first}))
                async for piece in pieces:
                    yield _sse(chunk_body(**chunk, delta={"content": piece}))
            except Exception as exc:
                log.exception("generation failed mid-stream")
                yield _sse(error_body(f"Generation failed: {exc}", type_="server_error"))
                yield _sse("[DONE]")
                return
            finally:
                await pieces.aclose()
            yield _sse(chunk_body(**chunk, finish_reason=outcome.finish_reason))
            if include_usage:
                yield _sse(
                    chunk_body(**chunk, usage_=usage(outcome.prompt_tokens, outcome.completion_tokens))
                )
            yield _sse("[DONE]")

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


def create_openai_app(
    model_path: str | Path,
    *,
    served_model_name: str | None = None,
    device: str | None = None,
    gpu_memory_fraction: float | None = None,
    default_max_tokens: int = 512,
) -> FastAPI:
    """Load the model at ``model_path`` and return the OpenAI-compatible app serving it."""
    engine = TransformersChatEngine(
        model_path,
        served_model_name=served_model_name,
        device=device,
        gpu_memory_fraction=gpu_memory_fraction,
        default_max_tokens=default_max_tokens,
    )
    return build_openai_app(engine)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="OpenAI-compatible chat server on transformers")
    parser.add_argument("--model", required=True, help="model directory or Hugging Face id")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if visible)")
    parser.add_argument("--gpu-memory-fraction", type=float, default=None)
    parser.add_argument("--default-max-tokens", type=int, default=512)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    app = create_openai_app(
        args.model,
        served_model_name=args.served_model_name,
        device=args.device,
        gpu_memory_fraction=args.gpu_memory_fraction,
        default_max_tokens=args.default_max_tokens,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()

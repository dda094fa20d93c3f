"""Serve deployment ``reranker``: cross-encoder relevance scores, batched across requests.

Routes (under ``/rerank`` by default):

``POST /rerank`` ``{"query": "...", "passages": ["...", ...]}``
    → ``{"scores": [float, ...], "model": str}``: one score in [0, 1] per passage, in order
    (sigmoid of the logit, or the "relevant" softmax column for two-label models).
``GET /rerank/health`` → ``{"status": "ok", "model", "device"}``

(query, passage) pairs from concurrent requests are batched by ``@serve.batch`` (default 32).
"""

# No `from __future__ import annotations`: FastAPI must see the request models as classes, and
# Ray's class-based views rebuild the route signatures without this module's globals.

import asyncio
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from ray import serve

from bunko.serving.errors_http import install_error_handlers
from bunko.serving.gpu import cap_gpu_memory, half_precision
from bunko.serving.spec import RerankerSpec
from bunko.serving.traced import trace_app

MAX_PASSAGES = 1024

app = FastAPI(title="Bunko reranker", docs_url=None, redoc_url=None)
install_error_handlers(app)


class RerankRequest(BaseModel):
    query: str = Field(max_length=10_000)
    passages: list[str] = Field(max_length=MAX_PASSAGES)


def load_serving_reranker(spec: RerankerSpec, device: str) -> Any:
    from bunko.models.rerank import CrossEncoderReranker
    return CrossEncoderReranker(spec.weights, batch_size=spec.max_batch_size, device=device,
                                max_length=spec.max_seq_length,
                                half_precision=half_precision(spec.dtype, device))


@serve.deployment(name="reranker")
@serve.ingress(app)
class RerankerDeployment:
    def __init__(self, args: dict[str, Any]) -> None:
        trace_app(app)
        self.spec = RerankerSpec.model_validate(args)
        self.device = self.spec.effective_device
        cap_gpu_memory(self.spec.effective_gpu_memory_fraction, self.device)
        self.reranker = load_serving_reranker(self.spec, self.device)
        self.score_one.set_max_batch_size(self.spec.max_batch_size)  # type: ignore[attr-defined]
        self.score_one.set_batch_wait_timeout_s(self.spec.batch_wait_timeout_s)  # type: ignore[attr-defined]

    def _score_groups(self, pairs: list[tuple[str, str]]) -> list[float]:
        scores = [0.0] * len(pairs)
        by_query: dict[str, list[int]] = {}
        for i, (q, _) in enumerate(pairs):
            by_query.setdefault(q, []).append(i)
        for q, idx in by_query.items():
            for i, s in zip(idx, self.reranker.score(q, [pairs[i][1] for i in idx]), strict=True):
                scores[i] = float(s)
        return scores

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def score_one(self, pairs: list[tuple[str, str]]) -> list[float]:
        return await asyncio.to_thread(self._score_groups, pairs)

    @app.post("/")
    async def rerank(self, req: RerankRequest) -> dict[str, Any]:
        scores = await asyncio.gather(*(self.score_one((req.query, p)) for p in req.passages))
        return {"scores": list(scores), "model": self.spec.model}

    @app.get("/health")
    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "model": self.spec.model, "device": self.device}

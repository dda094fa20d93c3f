"""Serve deployment ``llm``: one OpenAI-compatible route whatever the engine.

Routes (under ``/llm`` by default; point an OpenAI client at ``<endpoint>/llm/v1``):

``POST /llm/v1/chat/completions`` (streaming and not), ``GET /llm/v1/models``, ``GET /llm/health``.

Engines:

``transformers``
    :mod:`bunko.serving.llm_transformers` mounted with ``@serve.ingress`` (CPU, small models, tests).
``proxy``
    :mod:`bunko.serving.llm_proxy`, forwarding to ``upstream_url``.
``vllm``
    Ray Serve LLM (``ray.serve.llm.build_openai_app`` with an ``LLMConfig`` whose
    ``engine_kwargs.gpu_memory_utilization`` is the role's ``gpu_memory_fraction``). The Serve config
    builder emits that application directly; :func:`bunko.serving.apps.llm_app` builds the same
    thing in code. ``vllm`` is imported only then.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from ray import serve

from bunko.serving.llm_proxy import api_key_from_env, build_proxy_app
from bunko.serving.llm_transformers import TransformersChatEngine, build_openai_app
from bunko.serving.spec import LlmSpec
from bunko.serving.traced import trace_app

TRANSFORMERS_ENGINE_KWARGS = {"default_max_tokens"}


@serve.deployment(name="llm")
@serve.ingress()
class TransformersLlmDeployment:
    def __init__(self, args: dict[str, Any]) -> None:
        spec = LlmSpec.model_validate(args)
        unknown = set(spec.engine_kwargs) - TRANSFORMERS_ENGINE_KWARGS
        if unknown:
            raise ValueError(
                f"engine transformers does not take engine_kwargs {sorted(unknown)}; "
                f"it knows {sorted(TRANSFORMERS_ENGINE_KWARGS)}"
            )
        engine = TransformersChatEngine(
            spec.weights,
            served_model_name=spec.name,
            device=spec.effective_device,
            gpu_memory_fraction=spec.effective_gpu_memory_fraction,
            **spec.engine_kwargs,
        )
        self._app = build_openai_app(engine)
        trace_app(self._app)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self._app


@serve.deployment(name="llm")
@serve.ingress()
class ProxyLlmDeployment:
    def __init__(self, args: dict[str, Any]) -> None:
        spec = LlmSpec.model_validate(args)
        assert spec.upstream_url  # LlmSpec guarantees it for engine proxy
        self._app = build_proxy_app(
            spec.upstream_url,
            upstream_model=spec.model,
            served_model_name=spec.served_model_name,
            api_key=api_key_from_env(spec.upstream_api_key_env),
            **spec.engine_kwargs,
        )
        trace_app(self._app)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self._app

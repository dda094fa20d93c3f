"""Serve application builders: the ``import_path`` targets of the config ``build_serve_config`` writes.

Each takes the application's ``args`` (a role spec as a dict) and returns the bound deployment with
the role's replicas / autoscaling and ``ray_actor_options``, so ``serve.run(embed_app(args))`` in
code and a Serve config file deploy the same thing:

====================================  =============================  =========================
import path                           deployment                     routes
====================================  =============================  =========================
``bunko.serving.apps:ocr_app``        ``ocr`` (``OcrDeployment``)     ``POST /ocr``
``bunko.serving.apps:embed_app``      ``embedding``                  ``POST /embed``
``bunko.serving.apps:rerank_app``     ``reranker``                   ``POST /rerank``
``bunko.serving.apps:llm_app``        ``llm`` (or Ray Serve LLM)     ``/llm/v1/chat/completions``
====================================  =============================  =========================
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from bunko.serving.config import deployment_options, vllm_llm_config
from bunko.serving.spec import EmbeddingSpec, LlmSpec, OcrSpec, RerankerSpec, RoleSpec


def _bind(deployment: Any, spec: RoleSpec) -> Application:
    # `deployment` is a serve.deployment-decorated class (a Deployment at runtime; mypy sees the class).
    return deployment.options(**deployment_options(spec)).bind(
        spec.model_dump(mode="json", exclude_none=True)
    )


def ocr_app(args: dict[str, Any]) -> Application:
    from bunko.serving.ocr import OcrDeployment

    return _bind(OcrDeployment, OcrSpec.model_validate(args))


def embed_app(args: dict[str, Any]) -> Application:
    from bunko.serving.embed import EmbeddingDeployment

    return _bind(EmbeddingDeployment, EmbeddingSpec.model_validate(args))


def rerank_app(args: dict[str, Any]) -> Application:
    from bunko.serving.rerank import RerankerDeployment

    return _bind(RerankerDeployment, RerankerSpec.model_validate(args))


def llm_app(args: dict[str, Any]) -> Application:
    spec = LlmSpec.model_validate(args)
    if spec.engine == "vllm":
        from ray.serve.llm import build_openai_app

        return build_openai_app({"llm_configs": [vllm_llm_config(spec)]})
    if spec.engine == "proxy":
        from bunko.serving.llm import ProxyLlmDeployment

        return _bind(ProxyLlmDeployment, spec)
    from bunko.serving.llm import TransformersLlmDeployment

    return _bind(TransformersLlmDeployment, spec)

"""``build_serve_config``: a :class:`~bunko.serving.spec.ServingSpec` in, a Ray Serve config out.

The output is the document a KubeRay ``RayService`` takes as ``serveConfigV2`` (and ``serve deploy``
/ ``PUT /api/serve/applications/`` take as is): ``{"applications": [...]}``, validated with Ray's
own ``ray.serve.schema.ServeDeploySchema`` before it is returned.

One application per role
------------------------
Each role is its own Serve application (``bunko-ocr``, ``bunko-embedding``, ``bunko-reranker``,
``bunko-llm``), not one application with four deployments behind an ingress, because:

* the operator can roll one model (a new embedding model, a bigger LLM) by changing one
  application; Serve redeploys only the applications whose config changed, so OCR keeps serving;
* an application that fails to start (an LLM that does not fit) does not hold the others back;
* routing needs no ingress deployment: Serve's proxy routes by prefix straight to each role
  (``/ocr``, ``/embed``, ``/rerank``, ``/llm/v1/...``), one actor hop fewer per request;
* the vLLM engine *is* an application of its own (``ray.serve.llm:build_openai_app``) and slots
  in unchanged.

Routes, with ``route_prefix`` ``""`` (see ``bunko.serving.apps`` for the bodies):
``POST /ocr``, ``POST /embed``, ``POST /rerank``, ``POST /llm/v1/chat/completions``, and
``GET <prefix>/health`` per role (``/llm/v1/models`` for vLLM).

Resources
---------
Each role's ``num_cpus`` / ``num_gpus`` / ``memory_bytes`` land in its deployment's
``ray_actor_options``; ``replicas`` in ``num_replicas`` or ``autoscaling`` in
``autoscaling_config``. The engine's own GPU cap travels in the application ``args``
(``gpu_memory_fraction``) and, for vLLM, as ``engine_kwargs.gpu_memory_utilization``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from jsonschema import Draft202012Validator

from bunko.domain import MODEL_ROUTES, ModelRole
from bunko.errors import ConfigError
from bunko.serving.spec import LlmSpec, RoleSpec, ServingSpec

# (application builder in import_module, deployment name); the route is MODEL_ROUTES[role].
ROLE_LAYOUT: dict[ModelRole, tuple[str, str]] = {
    "ocr": ("ocr_app", "ocr"),
    "embedding": ("embed_app", "embedding"),
    "reranker": ("rerank_app", "reranker"),
    "llm": ("llm_app", "llm"),
}

VLLM_IMPORT_PATH = "ray.serve.llm:build_openai_app"


def role_route(spec: ServingSpec, role: ModelRole) -> str:
    return f"{spec.route_prefix}{MODEL_ROUTES[role]}"


def app_name(spec: ServingSpec, role: ModelRole) -> str:
    return f"{spec.app_prefix}{role}"


def _scaling(role: RoleSpec) -> dict[str, Any]:
    if role.autoscaling is not None:
        return {"autoscaling_config": role.autoscaling.model_dump()}
    return {"num_replicas": role.replicas or 1}


def _actor_options(role: RoleSpec) -> dict[str, Any]:
    opts: dict[str, Any] = {"num_cpus": role.num_cpus, "num_gpus": role.num_gpus}
    if role.memory_bytes is not None:
        opts["memory"] = role.memory_bytes
    return opts


def _runtime_env(spec: ServingSpec) -> dict[str, Any]:
    env = dict(spec.runtime_env)
    if spec.env_vars:
        env["env_vars"] = {**env.get("env_vars", {}), **spec.env_vars}
    return env


def deployment_options(role: RoleSpec) -> dict[str, Any]:
    """Serve deployment options for a role: scaling, ``ray_actor_options``, ``max_ongoing_requests``."""
    opts: dict[str, Any] = {**_scaling(role), "ray_actor_options": _actor_options(role)}
    if role.max_ongoing_requests is not None:
        opts["max_ongoing_requests"] = role.max_ongoing_requests
    return opts


def _bunko_app(spec: ServingSpec, role: ModelRole, role_spec: RoleSpec) -> dict[str, Any]:
    builder, deployment = ROLE_LAYOUT[role]
    dep: dict[str, Any] = {"name": deployment, **deployment_options(role_spec)}
    app: dict[str, Any] = {
        "name": app_name(spec, role),
        "route_prefix": role_route(spec, role),
        "import_path": f"{spec.import_module}:{builder}",
        # The builder re-validates these with the same RoleSpec class, so what runs is what was checked.
        "args": role_spec.model_dump(mode="json", exclude_none=True),
        "deployments": [dep],
    }
    if env := _runtime_env(spec):
        app["runtime_env"] = env
    return app


def vllm_llm_config(role: LlmSpec) -> dict[str, Any]:
    """The ``ray.serve.llm`` ``LLMConfig`` (as a dict) for a vLLM role.

    On a GPU the placement group bundle holds the role's ``num_gpus`` and ``engine_kwargs`` its
    ``gpu_memory_utilization``; with ``device: cpu`` (vLLM's CPU build) it holds CPUs only and
    neither is set. Ray Serve LLM adds its replica actor's CPU (1) to this bundle and runs an
    ingress deployment of 1 CPU beside it: ``num_cpus`` 1 takes 3 CPUs of the cluster in all.
    """
    engine_kwargs = dict(role.engine_kwargs)
    fraction = role.effective_gpu_memory_fraction
    if fraction is not None:
        engine_kwargs["gpu_memory_utilization"] = fraction
    if role.dtype != "auto":
        engine_kwargs.setdefault(
            "dtype", {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}[role.dtype]
        )
    deployment_config: dict[str, Any] = {"name": "llm", **_scaling(role)}
    if role.max_ongoing_requests is not None:
        deployment_config["max_ongoing_requests"] = role.max_ongoing_requests
    bundle: dict[str, float] = {"CPU": role.num_cpus}
    if role.num_gpus > 0:  # device cpu (vLLM's CPU build): no GPU key, so Ray places it on any node
        bundle["GPU"] = role.num_gpus
    if role.memory_bytes is not None:
        bundle["memory"] = role.memory_bytes
    return {
        "model_loading_config": {"model_id": role.name, "model_source": role.weights},
        "engine_kwargs": engine_kwargs,
        "deployment_config": deployment_config,
        # The engine actor's share: a fraction here lets vLLM sit beside the other models on one GPU.
        "placement_group_config": {"bundles": [bundle], "strategy": "PACK"},
    }


def _vllm_app(spec: ServingSpec, role: LlmSpec) -> dict[str, Any]:
    app: dict[str, Any] = {
        "name": app_name(spec, "llm"),
        "route_prefix": role_route(spec, "llm"),
        "import_path": VLLM_IMPORT_PATH,
        "args": {"llm_configs": [vllm_llm_config(role)]},
    }
    if env := _runtime_env(spec):
        app["runtime_env"] = env
    return app


def build_serve_config(spec: ServingSpec, *, validate: bool = True) -> dict[str, Any]:
    """The Serve ``applications:`` document for ``spec``, checked with ``ServeDeploySchema``.

    Raises :class:`~bunko.errors.ConfigError` when Ray's schema rejects the result.
    """
    apps: list[dict[str, Any]] = []
    for role, role_spec in spec.roles():
        if isinstance(role_spec, LlmSpec) and role_spec.engine == "vllm":
            apps.append(_vllm_app(spec, role_spec))
        else:
            apps.append(_bunko_app(spec, role, role_spec))
    doc: dict[str, Any] = {"applications": apps}
    if validate:
        validate_serve_config(doc)
    return doc


@cache
def _serve_deploy_validator() -> Draft202012Validator:
    # Ray Serve's own ServeDeploySchema, vendored as JSON Schema (scripts/vendor-serve-schema.py):
    # the operator checks what it renders without Ray in its image, and a test keeps the file equal
    # to what the installed Ray declares.
    text = (files("bunko.serving") / "ray_serve_deploy_schema.json").read_text(encoding="utf-8")
    return Draft202012Validator(json.loads(text))


def validate_serve_config(doc: dict[str, Any]) -> None:
    """Check ``doc`` against Ray Serve's deploy schema; raise ``ConfigError`` saying what is wrong."""
    errors = sorted(_serve_deploy_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    problems = [f"{'.'.join(map(str, e.absolute_path)) or 'config'}: {e.message}" for e in errors]
    if not problems:
        problems = _application_clashes(doc["applications"])
    if problems:
        raise ConfigError(f"the Serve config is not valid for Ray Serve: {'; '.join(problems)}", detail=doc)


def _application_clashes(apps: list[dict[str, Any]]) -> list[str]:
    """ServeDeploySchema's own Python validators, which no JSON Schema carries: application names
    non-empty and unique, route prefixes unique."""
    names = [a.get("name", "default") for a in apps]
    routes = [a["route_prefix"] for a in apps if a.get("route_prefix") is not None]
    out = [f"applications: application name {n!r} is used twice" for n in sorted(set(names)) if names.count(n) > 1]
    out += [f"applications: route_prefix {r!r} is used twice" for r in sorted(set(routes)) if routes.count(r) > 1]
    if "" in names:
        out.append("applications: an application name is empty")
    return out


def load_spec(data: dict[str, Any]) -> ServingSpec:
    """A ``ServingSpec`` from parsed YAML/JSON, with validation errors turned into ``ConfigError``."""
    from pydantic import ValidationError

    try:
        return ServingSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid serving spec: {problems}") from exc

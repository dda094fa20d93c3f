"""Render a Pipeline and its GPU plan into a KubeRay ``RayService`` (``ray.io/v1``). Pure: dicts out.

- ``serveConfigV2``: the serving package's builder (``bunko.serving.config.build_serve_config``)
  applied to a ``ServingSpec`` made here from the spec and the plan (Ray ``num_gpus`` fraction and
  the engine's own memory cap per role).
- ``rayClusterConfig``: a CPU-only head (``num-gpus: "0"``, ``num-cpus: "0"``: nothing is scheduled
  on it), one worker group per planned GPU (``nvidia.com/gpu: 1``; on several GPUs each group also
  carries a custom Ray resource ``bunko_gpu_<i>`` and each deployment asks for a sliver of it, so
  Ray keeps the planner's placement instead of packing on its own), or one CPU worker group for a
  CPU-only pipeline; the model cache volume on every worker.
- ``upgradeStrategy``: ``None`` on a single GPU — a blue-green upgrade starts a second cluster and
  would need a second GPU — and ``NewCluster`` otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from bunko.domain import MODEL_ROUTES, ModelRole
from bunko.operator.catalogue import CATALOGUE, GPU_PRODUCT_LABEL, GPU_PRODUCTS
from bunko.operator.kinds.pipeline import Embedding, Llm, ModelCache, ModelPart, Ocr, PipelineSpec, Ray, Reranker
from bunko.operator.planner import Gpu, Placement, Plan
from bunko.serving.config import app_name, build_serve_config, load_spec, validate_serve_config
from bunko.serving.spec import ServingSpec

LABEL_PIPELINE = "bunko.dev/pipeline"
# The Pipeline's metadata.generation the RayService was rendered from: its status speaks for that
# generation only (readiness(pipeline_current=...)).
ANNOTATION_GENERATION = "bunko.dev/pipeline-generation"
SERVE_PORT = 8000
DASHBOARD_PORT = 8265
CACHE_VOLUME = "model-cache"
# A custom resource per planned GPU; deployments ask for this much of it, which pins them.
PIN_AMOUNT = 0.001

# Every Ray pod meets Pod Security "restricted": the rayproject/ray image's user (ray, 1000:100),
# no privilege escalation, no capabilities, the runtime's default seccomp profile.
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100,
                "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
# The taint GPU node pools carry (GKE, AKS and the GPU operator's examples): GPU pods tolerate it.
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti)?$")
_UNITS = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def gpu_resource(index: int) -> str:
    return f"bunko_gpu_{index}"


def quantity_bytes(q: str) -> int:
    m = _QUANTITY.match(q)
    if not m:
        raise ValueError(f"not a memory quantity: {q!r} (use e.g. 8Gi)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


# --- ServingSpec ----------------------------------------------------------------------------------


def serving_spec(spec: PipelineSpec, plan: Plan) -> ServingSpec:
    """The ServingSpec for a planned Pipeline spec."""
    cache = spec.model_cache.mount_path
    roles: dict[str, Any] = {role: _role(role, part, plan.for_role(role)) for role, part in spec.served()}
    return load_spec(
        {
            **roles,
            # Weights are downloaded once into the model cache volume, not into each container.
            "env_vars": {"HF_HOME": f"{cache}/huggingface", "BUNKO_MODEL_CACHE": cache},
        }
    )


def _role(role: ModelRole, part: ModelPart, placements: list[Placement]) -> dict[str, Any]:
    first = placements[0] if placements else None
    on_gpu = first is not None and first.gpu is not None
    out: dict[str, Any] = {
        "model": part.model,
        "device": "cuda" if on_gpu else "cpu",
        "replicas": part.replicas,
        "num_cpus": part.resources.cpu,
        "num_gpus": first.num_gpus if on_gpu and first else 0.0,
    }
    if on_gpu and first and first.memory_fraction is not None:
        out["gpu_memory_fraction"] = first.memory_fraction
    if part.resources.memory is not None:
        out["memory_bytes"] = quantity_bytes(part.resources.memory)
    if part.source:
        out["source"] = part.source
    if part.dtype != "auto":
        out["dtype"] = part.dtype
    if isinstance(part, (Embedding, Reranker)):
        out["max_batch_size"] = part.batch_size
        out["max_seq_length"] = part.max_seq_length
    if isinstance(part, Ocr):
        out["engine"] = part.model
        out["fallback"] = list(part.fallback)
    if isinstance(part, Llm):
        out.update(_llm(part))
    return out


def _llm(part: Llm) -> dict[str, Any]:
    out: dict[str, Any] = {"engine": part.engine, "served_model_name": part.served_model_name or part.model}
    if part.engine == "proxy":
        return {**out, "upstream_url": part.url, "device": "cpu", "num_gpus": 0.0}
    info = CATALOGUE.get(part.model)
    if part.quantization != "none" and not part.source and info and part.quantization in info.quantized_sources:
        out["source"] = info.quantized_sources[part.quantization]
    kwargs: dict[str, Any] = {"max_model_len": part.max_model_len}
    if part.engine == "vllm":
        kwargs["max_num_seqs"] = part.max_concurrent_sequences
        # Pre-quantised AWQ/GPTQ checkpoints declare their method; vLLM then picks its fastest
        # kernel (Marlin). Only fp8 is an on-the-fly quantisation that must be asked for.
        if part.quantization == "fp8":
            kwargs["quantization"] = "fp8"
        if part.kv_cache_dtype != "auto":
            kwargs["kv_cache_dtype"] = part.kv_cache_dtype
    out["engine_kwargs"] = kwargs
    return out


# --- the RayService -------------------------------------------------------------------------------


def render_serve_config(spec: PipelineSpec, plan: Plan) -> dict[str, Any]:
    """The Serve config, checked against Ray Serve's deploy schema (vendored: no Ray needed here)."""
    sspec = serving_spec(spec, plan)
    config = build_serve_config(sspec, validate=False)
    if len(plan.gpus) > 1:
        _pin_to_gpus(config, plan, sspec)
    validate_serve_config(config)
    return config


def _pin_to_gpus(config: dict[str, Any], plan: Plan, sspec: ServingSpec) -> None:
    """Ask each GPU deployment for a sliver of its planned GPU's custom resource."""
    app_role = {app_name(sspec, role): role for role, _ in sspec.roles()}
    for app in config.get("applications", []):
        role = app_role.get(app.get("name", ""))
        placements = [p for p in plan.for_role(role) if p.gpu is not None] if role else []
        if not placements:
            continue
        gpus = {p.gpu for p in placements}
        if len(gpus) != 1:
            continue  # replicas spread over GPUs: Ray's fractions alone keep them within memory
        resource = gpu_resource(placements[0].gpu)  # type: ignore[arg-type]
        for dep in app.get("deployments", []):
            opts = dep.setdefault("ray_actor_options", {})
            if opts.get("num_gpus", 0):
                opts.setdefault("resources", {})[resource] = PIN_AMOUNT
        for llm_config in app.get("args", {}).get("llm_configs", []):  # vLLM: its placement group
            for bundle in llm_config.get("placement_group_config", {}).get("bundles", []):
                if bundle.get("GPU", 0):
                    bundle[resource] = PIN_AMOUNT


def render_rayservice(
    name: str, namespace: str, spec: PipelineSpec, plan: Plan, *, generation: int | None = None
) -> dict[str, Any]:
    """The RayService for a feasible plan of the Pipeline ``name`` (at ``generation``)."""
    if not plan.feasible:
        raise ValueError(f"cannot render an infeasible plan: {plan.message}")
    labels = {
        "app.kubernetes.io/name": "bunko",
        "app.kubernetes.io/component": "serving",
        "app.kubernetes.io/managed-by": "bunko-operator",
        LABEL_PIPELINE: name,
    }
    config = render_serve_config(spec, plan)
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            **({"annotations": {ANNOTATION_GENERATION: str(generation)}} if generation is not None else {}),
        },
        "spec": {
            "serveConfigV2": yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
            "upgradeStrategy": {"type": "None" if plan.single_gpu else "NewCluster"},
            "rayClusterConfig": {
                "rayVersion": spec.ray.version,
                "enableInTreeAutoscaling": False,
                "headGroupSpec": _head(spec, labels),
                "workerGroupSpecs": _workers(spec, plan, labels),
            },
        },
    }


def _env(ray: Ray) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "RAY_SERVE_ENABLE_EXPERIMENTAL_STREAMING", "value": "1"}]
    if ray.hf_token_secret:
        env.append(
            {
                "name": "HF_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": ray.hf_token_secret, "key": "hf_token"}},
            }
        )
    if ray.tracing.otlp_endpoint:
        # The replicas' spans (bunko.serving.traced), sampled as the caller's trace was.
        env += [
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": ray.tracing.otlp_endpoint},
            {"name": "OTEL_TRACES_SAMPLER", "value": "parentbased_traceidratio"},
            {"name": "OTEL_TRACES_SAMPLER_ARG", "value": str(ray.tracing.sample_ratio)},
        ]
    return env


def _pod_spec(
    containers: list[dict[str, Any]],
    spec: PipelineSpec,
    *,
    gpu: Gpu | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Ray pod: hardened, placed by spec.placement, and for a GPU group on a node of its GPU."""
    placement = spec.placement
    pod: dict[str, Any] = {
        "securityContext": dict(POD_SECURITY),
        "containers": [{**c, "securityContext": dict(CONTAINER_SECURITY)} for c in containers],
    }
    if volumes:
        pod["volumes"] = volumes
    if spec.ray.service_account_name:
        pod["serviceAccountName"] = spec.ray.service_account_name
    if placement.node_selector:
        pod["nodeSelector"] = dict(placement.node_selector)
    tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in placement.tolerations]
    if gpu is not None:
        tolerations.insert(0, dict(GPU_TOLERATION))
        products = (gpu.product,) if gpu.product else GPU_PRODUCTS.get(gpu.type, ())
        if placement.gpu_affinity and products:
            term = {"matchExpressions": [{"key": GPU_PRODUCT_LABEL, "operator": "In", "values": list(products)}]}
            pod["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [term]}}}
        if placement.runtime_class_name:
            pod["runtimeClassName"] = placement.runtime_class_name
    if tolerations:
        pod["tolerations"] = tolerations
    if placement.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": n} for n in placement.image_pull_secrets]
    return pod


def _head(spec: PipelineSpec, labels: dict[str, str]) -> dict[str, Any]:
    ray = spec.ray
    res = {"cpu": ray.head.cpu, "memory": ray.head.memory}
    container = {
        "name": "ray-head",
        "image": ray.image,
        "env": _env(ray),
        "ports": [
            {"containerPort": 6379, "name": "gcs", "protocol": "TCP"},
            {"containerPort": DASHBOARD_PORT, "name": "dashboard", "protocol": "TCP"},
            {"containerPort": 10001, "name": "client", "protocol": "TCP"},
            {"containerPort": SERVE_PORT, "name": "serve", "protocol": "TCP"},
            {"containerPort": 8080, "name": "metrics", "protocol": "TCP"},
        ],
        "resources": {"limits": dict(res), "requests": dict(res)},
    }
    return {
        "rayStartParams": {"num-gpus": "0", "num-cpus": "0", "dashboard-host": "0.0.0.0"},
        "template": {"metadata": {"labels": dict(labels)}, "spec": _pod_spec([container], spec)},
    }


def _cache_volume(cache: ModelCache) -> dict[str, Any]:
    if cache.type == "PersistentVolumeClaim":
        return {"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": cache.claim_name}}
    return {"name": CACHE_VOLUME, "emptyDir": {}}


def _workers(spec: PipelineSpec, plan: Plan, labels: dict[str, str]) -> list[dict[str, Any]]:
    ray = spec.ray
    base = {"cpu": ray.worker.cpu, "memory": ray.worker.memory}
    groups: list[tuple[str, dict[str, str], dict[str, str], Gpu | None]] = []
    if not plan.gpus_used:
        groups.append(("cpu", dict(base), {"num-gpus": "0"}, None))
    for gpu in plan.gpus_used:
        params = {"num-gpus": "1"}
        if len(plan.gpus) > 1:
            params["resources"] = f'"{{\\"{gpu_resource(gpu.index)}\\": 1}}"'
        # A MIG instance is one CUDA device to Ray (num-gpus 1); the pod asks for that slice.
        groups.append((f"gpu-{gpu.index}", {**base, gpu.resource: "1"}, params, gpu))
    out = []
    for group, res, params, group_gpu in groups:
        container = {
            "name": "ray-worker",
            "image": ray.image,
            "env": _env(ray),
            "resources": {"limits": dict(res), "requests": dict(res)},
            "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": spec.model_cache.mount_path}],
        }
        out.append(
            {
                "groupName": group,
                "replicas": 1,
                "minReplicas": 1,
                "maxReplicas": 1,
                "numOfHosts": 1,
                "rayStartParams": params,
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": _pod_spec([container], spec, gpu=group_gpu, volumes=[_cache_volume(spec.model_cache)]),
                },
            }
        )
    return out


def endpoints(name: str, namespace: str, spec: PipelineSpec) -> dict[str, str]:
    """In-cluster URLs of the Serve routes (KubeRay names the Serve service ``<name>-serve-svc``)."""
    base = f"http://{name}-serve-svc.{namespace}.svc:{SERVE_PORT}"
    out = {"serve": base, "dashboard": f"http://{name}-head-svc.{namespace}.svc:{DASHBOARD_PORT}"}
    out.update({role: base + MODEL_ROUTES[role] for role, _ in spec.served()})
    return out


# --- reading a RayService's status back -----------------------------------------------------------


def readiness(
    rs_status: Mapping[str, Any] | None, *, generation: int | None = None, pipeline_current: bool = True
) -> dict[str, Any]:
    """What a RayService's status means for its Pipeline: phase, Ready condition, deployment states.

    KubeRay v1.7 reports ``conditions`` (``Ready``, ``UpgradeInProgress``), ``observedGeneration``,
    ``pendingServiceStatus`` while a new cluster is coming up and, per Serve application,
    ``activeServiceStatus.applicationStatuses.<app>.serveDeploymentStatuses``. Ready needs all of:
    the RayService rendered from the Pipeline's current spec (``pipeline_current``), KubeRay having
    acted on the RayService's current spec (``observedGeneration`` = ``generation``), no upgrade
    or rollback under way, and KubeRay's own Ready. An old status can then never mark a changed
    Pipeline Ready.
    """
    rs_status = rs_status or {}
    deployments: dict[str, dict[str, str]] = {}
    failing: list[str] = []
    apps = (rs_status.get("activeServiceStatus") or {}).get("applicationStatuses") or {}
    for app, app_status in sorted(apps.items()):
        for dep, dep_status in sorted((app_status.get("serveDeploymentStatuses") or {}).items()):
            entry = {"status": str(dep_status.get("status", "UNKNOWN"))}
            if dep_status.get("message"):
                entry["message"] = str(dep_status["message"])
            deployments[f"{app}/{dep}"] = entry
            if entry["status"] in ("UNHEALTHY", "DEPLOY_FAILED"):
                failing.append(f"{app}/{dep}: {entry.get('message') or entry['status']}")
        if app_status.get("status") in ("DEPLOY_FAILED", "UNHEALTHY") and not any(
            f.startswith(f"{app}/") for f in failing
        ):
            failing.append(f"{app}: {app_status.get('message') or app_status.get('status')}")
    ready_cond = next((c for c in rs_status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready_cond is not None:
        ready = ready_cond.get("status") == "True"
        reason = str(ready_cond.get("reason") or ("Ready" if ready else "NotReady"))
        message = str(ready_cond.get("message") or "")
    else:  # older KubeRay: only serviceStatus
        ready = rs_status.get("serviceStatus") == "Running"
        reason = "Running" if ready else "WaitingForRayService"
        message = ""
    observed = rs_status.get("observedGeneration")
    pending = (rs_status.get("pendingServiceStatus") or {}).get("applicationStatuses")
    if failing:
        phase, message = "Degraded", "; ".join(failing)
        reason = "DeploymentFailing"
        ready = False
    elif _condition_true(rs_status, "RollbackInProgress"):
        phase, reason, ready = "Degraded", "RollbackInProgress", False
        message = "KubeRay is rolling the RayService back to its previous cluster"
    elif not pipeline_current:
        phase, reason, ready = "Deploying", "PipelineChanged", False
        message = "the Pipeline changed; its RayService is being updated"
    elif generation is not None and observed is not None and int(observed) < generation:
        phase, reason, ready = "Deploying", "RayServiceUpdating", False
        message = f"KubeRay has not yet acted on the RayService's change (generation {observed} of {generation})"
    elif _condition_true(rs_status, "UpgradeInProgress") or pending:
        phase, reason, ready = "Deploying", "UpgradeInProgress", False
        message = "a new Ray cluster is starting with the change; the previous one keeps serving"
    else:
        phase = "Ready" if ready else "Deploying"
    if not message:
        message = "every Serve deployment is healthy" if ready else "the RayService is starting"
    return {"phase": phase, "ready": ready, "reason": reason, "message": message, "deployments": deployments}


def _condition_true(rs_status: Mapping[str, Any], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in rs_status.get("conditions") or [])

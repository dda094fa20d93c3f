"""One real local Ray cluster with Bunko's four Serve applications, shared by the modules that use it.

The fixture ``serve_cluster`` (``tests/integration/conftest.py``) is module-scoped: pytest makes
one instance per module that uses it, so the cluster itself is a process-wide
singleton: the first module that asks starts it, and it is stopped when the last module that asks
for it has finished (looked up in the session's collected items), so the ~2.3 GB of Ray + Serve is
not held through unrelated tests and the ~30 s start is paid once.

The cluster: ``ray.init`` with 2 CPUs, no GPU, no dashboard, bound to 127.0.0.1
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, set by ``start_local_ray``), Serve's proxy on a free
port, and every application of the config ``build_serve_config`` writes deployed through
``bunko.serving.local.deploy_config``: a tiny Llama embedder with last-token pooling, a tiny Llama
reranker, a tiny Qwen2 LLM (engine ``transformers``) and rapidocr.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bunko.serving.config import build_serve_config
from bunko.serving.spec import EmbeddingSpec, LlmSpec, OcrSpec, RerankerSpec, ServingSpec
from bunko.testing.servers import free_port
from bunko.testing.tiny_models import make_tiny_embedder, make_tiny_llm, make_tiny_reranker
from tests.support.otlp import OtlpReceiver

FIXTURE = "serve_cluster"
LLM_NAME = "tiny-qwen2"
# The byte-level tiny tokenizer spends ~1.2 tokens per Japanese character: the system prompt alone
# is ~720 tokens, so a real question with five retrieved passages needs more than the builder's 1024.
LLM_CONTEXT = 4096


@dataclass
class ServeCluster:
    url: str  # http://127.0.0.1:PORT, Serve's proxy
    models: dict[str, Path]
    config: dict[str, Any]  # what build_serve_config wrote and deploy_config ran
    spans: OtlpReceiver  # where the replicas export their traces (bunko.serving.traced)
    deleted: set[str] = field(default_factory=set)

    def application(self, role: str) -> dict[str, Any]:
        for app in self.config["applications"]:
            if app["name"] == f"bunko-{role}":
                return dict(app)
        raise KeyError(role)

    def delete(self, role: str) -> None:
        """Take one role's Serve application down (``serve.delete``), as an outage would."""
        from ray import serve

        serve.delete(self.application(role)["name"], _blocking=True)
        self.deleted.add(role)

    def redeploy(self, role: str) -> None:
        """Deploy one role again from the same config entry, the way ``deploy_config`` does."""
        from ray import serve

        app = self.application(role)
        module, func = app["import_path"].split(":")
        builder = getattr(importlib.import_module(module), func)
        serve.run(builder(app.get("args", {})), name=app["name"], route_prefix=app["route_prefix"])
        self.deleted.discard(role)

    def restore(self) -> None:
        """Redeploy whatever a test left deleted, so the next test finds all four roles."""
        for role in sorted(self.deleted):
            self.redeploy(role)


_cluster: ServeCluster | None = None
PROXY_READY_ENV, PROXY_READY_S = "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "30"


def _start(root: Path) -> ServeCluster:
    from bunko.serving.local import deploy_config, start_local_ray

    receiver = OtlpReceiver()
    models = {
        "embedder": make_tiny_embedder(root / "embedder"),
        "reranker": make_tiny_reranker(root / "reranker"),
        "llm": make_tiny_llm(root / f"llm-{LLM_CONTEXT}", context=LLM_CONTEXT),
    }
    spec = ServingSpec(
        ocr=OcrSpec(model="rapidocr", num_cpus=0.25),
        embedding=EmbeddingSpec(model=str(models["embedder"]), num_cpus=0.25, max_batch_size=16),
        reranker=RerankerSpec(model=str(models["reranker"]), num_cpus=0.25),
        llm=LlmSpec(
            model=str(models["llm"]), engine="transformers", served_model_name=LLM_NAME, num_cpus=0.25
        ),
        env_vars={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
                  # The replicas trace as a cluster's do when the Pipeline sets ray.tracing.
                  "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"},
    )
    config = build_serve_config(spec)
    port = free_port()
    # Serve kills a proxy that is not ready in 5 s; on 2 busy cores its worker can take longer to
    # start, and serve.start then fails (ActorDiedError). Ray's processes inherit the variable.
    os.environ.setdefault(PROXY_READY_ENV, PROXY_READY_S)
    start_local_ray(num_cpus=2, num_gpus=0, env_vars=spec.env_vars, attach=False)
    try:
        deploy_config(config, port=port)
    except BaseException:
        _shutdown_ray()
        receiver.close()
        raise
    return ServeCluster(url=f"http://127.0.0.1:{port}", models=models, config=config, spans=receiver)


def _shutdown_ray() -> None:
    import ray
    from ray import serve

    try:
        serve.shutdown()
    finally:
        ray.shutdown()


def _stop() -> None:
    global _cluster
    if _cluster is not None:
        receiver, _cluster = _cluster.spans, None
        try:
            _shutdown_ray()
        finally:
            receiver.close()


def _needed_later(request: pytest.FixtureRequest) -> bool:
    """Does any test after this module's last one use the cluster?"""
    items = request.session.items
    mine = [i for i, item in enumerate(items) if getattr(item, "module", None) is request.module]
    if not mine:
        return False
    return any(FIXTURE in getattr(item, "fixturenames", ()) for item in items[mine[-1] + 1 :])


def shared_cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeCluster]:
    """The body of the ``serve_cluster`` fixture: the running cluster, started on first use."""
    global _cluster
    if _cluster is None:
        _cluster = _start(tmp_path_factory.mktemp("serve-models"))
        # Safety net for an interrupted session (-x, Ctrl-C): the cluster never outlives pytest.
        request.config.add_cleanup(_stop)
    cluster = _cluster
    try:
        yield cluster
    finally:
        if _needed_later(request):
            cluster.restore()
        else:
            _stop()

"""Fixtures for integration tests that need a whole Bunko runtime."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bunko.testing.servers import free_port, stop_process


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Milvus Lite gRPC server as its own process, so several processes (workers, the test) can
    share one vector store as they would share a Milvus cluster. Yields its URI."""
    from pymilvus import MilvusClient

    data = tmp_path_factory.mktemp("milvus-server")
    port = free_port()
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir", str(data / "db"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"milvus-lite server exited with {proc.returncode}; see {data / 'server.log'}")
        try:
            MilvusClient(uri=uri, timeout=2).list_collections()
            break
        except Exception as exc:
            last = exc
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail(f"milvus-lite server did not answer on {uri} within 60 s: {last}")
    yield uri
    stop_process(proc)
    log.close()


@pytest.fixture
def runtime_factory(settings_factory: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """Builds a Runtime from settings overrides; closes what it opened at the end of the test."""
    from bunko.runtime import Runtime

    made: list[Runtime] = []

    def make(**overrides: Any) -> Runtime:
        rt = Runtime(settings_factory(**overrides))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fake Kubernetes API (kmock) with Bunko's CRDs, and the kubeconfig pointing at it."""
    from kubernetes.config import kube_config

    from tests.support.kube_cluster import FakeCluster

    fake = FakeCluster(tmp_path).start()
    # The kubernetes client reads this at import time; kopf's login goes through it.
    monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(fake.kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OpenAI-compatible server (``bunko.testing.servers``) over a tiny test-made LLM."""
    from bunko.testing.servers import llm_server as run_llm_server
    from bunko.testing.tiny_models import make_tiny_llm

    model = make_tiny_llm(tmp_path_factory.mktemp("llm") / "tiny-qwen")
    with run_llm_server(model, served_model_name="tiny-qwen", startup_timeout_s=180) as base:
        yield base


@pytest.fixture(scope="module")
def serve_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real local Ray cluster with Bunko's four Serve applications (``tests/support/ray_serve.py``),
    started by the first module that asks and stopped after the last one."""
    from tests.support.ray_serve import shared_cluster  # Ray loads only for the modules that use it

    yield from shared_cluster(request, tmp_path_factory)

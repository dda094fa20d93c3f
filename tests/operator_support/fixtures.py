"""pytest fixtures: a fake cluster, and kopf running the Bunko operator against it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.config import kube_config

from tests.operator_support.cluster import FakeCluster

EXAMPLES = Path(__file__).resolve().parents[2] / "crds" / "examples"


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())  # type: ignore[no-any-return]


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCluster]:
    fake = FakeCluster(tmp_path).start()
    # The kubernetes client reads this at import time; kopf's login goes through it.
    monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(fake.kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    try:
        yield fake
    finally:
        fake.stop()


@contextlib.contextmanager
def operator_running() -> Iterator[Any]:
    """kopf running ``bunko.operator.main`` cluster-wide (kmock cannot list namespaces)."""
    from kopf.testing import KopfRunner

    with KopfRunner(
        ["run", "-A", "--standalone", "--verbose", "-m", "bunko.operator.main"], timeout=30
    ) as runner:
        yield runner

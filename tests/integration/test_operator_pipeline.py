"""kopf runs the Bunko operator against kmock's Kubernetes API: Pipeline → RayService and back."""

from __future__ import annotations

import copy
import time

import yaml

from tests.support.kube_cluster import wait_for
from tests.support.operator import example, operator_running


def _condition(obj, type_):
    for c in (obj or {}).get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return None


def test_pipeline_lifecycle(cluster):
    pipeline = example("pipeline.permissive.yaml")
    with operator_running() as runner:
        cluster.apply(pipeline)
        rs = wait_for(lambda: cluster.get("RayService", "bunko-permissive"), what="the RayService")
        owner = rs["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("Pipeline", "bunko-permissive")
        assert rs["spec"]["upgradeStrategy"] == {"type": "None"}
        apps = {a["name"]: a for a in yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"]}
        assert apps["bunko-embedding"]["args"]["model"] == "cl-nagoya/ruri-v3-310m"

        p = wait_for(
            lambda: (o := cluster.get("Pipeline", "bunko-permissive")) and _condition(o, "Planned") and o,
            what="the Planned condition",
        )
        assert _condition(p, "Planned")["status"] == "True"
        assert p["status"]["phase"] == "Deploying"
        assert {e["role"] for e in p["status"]["placement"]} == {"ocr", "embedding", "reranker", "llm"}
        assert p["status"]["endpoints"]["llm"] == "http://bunko-permissive-serve-svc.default.svc:8000/llm"

        # Changing a model patches the RayService (and only then).
        writes_before = len(cluster.writes("RayService"))
        changed = copy.deepcopy(pipeline)
        changed["spec"]["embedding"]["model"] = "cl-nagoya/ruri-v3-130m"
        cluster.apply(changed)

        def embedding_model():
            live = cluster.get("RayService", "bunko-permissive")
            cfg = yaml.safe_load(live["spec"]["serveConfigV2"])
            return {a["name"]: a for a in cfg["applications"]}["bunko-embedding"]["args"]["model"]

        wait_for(lambda: embedding_model() == "cl-nagoya/ruri-v3-130m", what="the patched embedding model")
        assert ("PATCH", None) in cluster.writes("RayService")[writes_before:]

        # KubeRay reports the service ready: the Pipeline's status follows.
        cluster.patch_status(
            "RayService",
            "bunko-permissive",
            {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "RunningServeApps",
                        "message": "",
                        "lastTransitionTime": "2026-11-24T00:00:00Z",
                    }
                ],
                "activeServiceStatus": {
                    "applicationStatuses": {
                        "bunko-llm": {
                            "status": "RUNNING",
                            "serveDeploymentStatuses": {"llm": {"status": "HEALTHY"}},
                        },
                    }
                },
            },
        )
        p = wait_for(
            lambda: (
                (o := cluster.get("Pipeline", "bunko-permissive"))
                and o["status"].get("phase") == "Ready"
                and o
            ),
            what="phase Ready",
        )
        assert _condition(p, "Ready")["status"] == "True"
        assert p["status"]["deployments"] == {"bunko-llm/llm": {"status": "HEALTHY"}}

        # Re-delivering the same RayService status changes nothing in the Pipeline.
        pipeline_writes = len(cluster.writes("Pipeline"))
        cluster.patch_status("RayService", "bunko-permissive", {"serviceStatus": "Running"})
        time.sleep(1.5)
        assert cluster.writes("Pipeline")[pipeline_writes:] == []
    assert runner.exception is None

    # A restarted operator sees every object again (kopf's resume): nothing changes.
    before = cluster.get("Pipeline", "bunko-permissive")
    rs_writes, pipeline_writes = len(cluster.writes("RayService")), len(cluster.writes("Pipeline"))
    with operator_running() as runner:
        time.sleep(3)
    assert runner.exception is None
    assert "reconcile_pipeline" in runner.output  # the resume handler did run
    assert cluster.writes("RayService")[rs_writes:] == []
    assert cluster.writes("Pipeline")[pipeline_writes:] == []
    assert cluster.get("Pipeline", "bunko-permissive") == before


def test_infeasible_pipeline_gets_planned_false_and_no_rayservice(cluster):
    pipeline = example("pipeline.rtx4090.yaml")
    pipeline["metadata"]["name"] = "seed-split"
    for role, share in (("ocr", 0.4), ("embedding", 0.3), ("reranker", 0.1), ("llm", 0.2)):
        pipeline["spec"][role]["resources"] = {"gpuFraction": share}
    with operator_running() as runner:
        cluster.apply(pipeline)
        p = wait_for(
            lambda: (o := cluster.get("Pipeline", "seed-split")) and _condition(o, "Planned") and o,
            what="the Planned condition",
        )
        planned = _condition(p, "Planned")
        assert planned["status"] == "False"
        assert planned["reason"] == "InsufficientGpuMemory"
        assert "4.8 GiB" in planned["message"] and "Qwen/Qwen2.5-14B-Instruct" in planned["message"]
        assert p["status"]["phase"] == "Infeasible"
        assert cluster.get("RayService", "seed-split") is None
        assert cluster.writes("RayService") == []
    assert runner.exception is None


def test_an_old_rayservice_status_never_marks_a_changed_pipeline_ready(cluster):
    pipeline = example("pipeline.cpu.yaml")
    name = pipeline["metadata"]["name"]

    def report(observed: int) -> None:  # what KubeRay writes once it has acted on a generation
        cluster.patch_status("RayService", name, {
            "observedGeneration": observed,
            "conditions": [{"type": "Ready", "status": "True", "reason": "RunningServeApps", "message": "",
                            "lastTransitionTime": "2026-12-06T00:00:00Z"}]})

    def pipeline_where(check, what):
        return wait_for(lambda: (o := cluster.get("Pipeline", name)) and check(o) and o, what=what)

    with operator_running() as runner:
        cluster.apply(pipeline)
        rs = wait_for(lambda: cluster.get("RayService", name), what="the RayService")
        report(rs["metadata"]["generation"])
        p = pipeline_where(lambda o: o["status"].get("phase") == "Ready", "phase Ready")
        assert p["status"]["observedGeneration"] == p["metadata"]["generation"] == 1
        assert _condition(p, "Ready")["observedGeneration"] == 1

        changed = copy.deepcopy(pipeline)
        changed["spec"]["embedding"]["batchSize"] = 16
        cluster.apply(changed)
        p = pipeline_where(lambda o: o["status"].get("observedGeneration") == 2, "observedGeneration 2")
        assert p["status"]["phase"] == "Deploying"
        rs = wait_for(lambda: (o := cluster.get("RayService", name)) and o["metadata"]["generation"] == 2 and o,
                      what="the RayService's new generation")
        # KubeRay re-delivers its status for the old generation: the Pipeline stays not Ready.
        report(1)
        time.sleep(2)
        p = cluster.get("Pipeline", name)
        assert p["status"]["phase"] == "Deploying"
        assert _condition(p, "Ready")["status"] == "False"
        assert _condition(p, "Ready")["reason"] in ("RayServiceUpdating", "Deploying")
        # Once KubeRay has acted on the new generation, it is Ready again, for generation 2.
        report(2)
        p = pipeline_where(lambda o: o["status"].get("phase") == "Ready", "phase Ready again")
        assert _condition(p, "Ready")["observedGeneration"] == 2
    assert runner.exception is None

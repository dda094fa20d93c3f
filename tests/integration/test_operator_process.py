"""`bunko operator run` as a real process: liveness and Prometheus endpoints, and it reconciles."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from bunko.testing.servers import free_port
from tests.support.kube_cluster import wait_for
from tests.support.operator import example


def test_operator_process_serves_liveness_and_metrics(cluster, tmp_path):
    live, metrics = free_port(), free_port()
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "BUNKO_DATA_DIR": str(tmp_path / "data")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    cmd = [
        sys.executable,
        "-c",
        "from bunko.operator.cli import app; app()",
        "run",
        "--liveness",
        f"http://127.0.0.1:{live}/healthz",
        "--metrics-port",
        str(metrics),
        "--metrics-host",
        "127.0.0.1",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        cluster.apply(example("pipeline.cpu.yaml"))
        wait_for(lambda: cluster.get("RayService", "bunko-cpu"), timeout=60, what="the RayService")

        def get(url):
            try:
                return httpx.get(url, timeout=2)
            except httpx.HTTPError:
                return None

        health = wait_for(lambda: get(f"http://127.0.0.1:{live}/healthz"), what="the liveness endpoint")
        assert health.status_code == 200 and "handlers" in health.json()
        text = get(f"http://127.0.0.1:{metrics}/metrics").text
        assert 'bunko_operator_reconciles_total{kind="Pipeline",outcome="ok"}' in text
        assert 'bunko_operator_pipeline_feasible{name="bunko-cpu",namespace="default"} 1.0' in text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode in (0, -15), out


def test_a_namespaced_operator_reconciles_its_namespace_only(cluster, tmp_path):
    """The chart's default (operator.clusterWide false): `--namespace=<release namespace>`. kopf then
    lists the Namespace objects to find the ones it watches, and reconciles only there."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "BUNKO_DATA_DIR": str(tmp_path / "data")}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    cmd = [sys.executable, "-c", "from bunko.operator.cli import app; app()", "run", "--standalone",
           "--namespace=default"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        from kubernetes import client

        core = client.CoreV1Api(cluster.api().api_client)
        core.create_namespace({"metadata": {"name": "elsewhere"}})
        cluster.apply(example("pipeline.cpu.yaml"))
        elsewhere = example("pipeline.cpu.yaml")
        elsewhere["metadata"]["name"] = "bunko-elsewhere"
        cluster.apply(elsewhere, namespace="elsewhere")
        wait_for(lambda: cluster.get("RayService", "bunko-cpu"), timeout=60, what="the RayService")
        wait_for(lambda: (cluster.get("Pipeline", "bunko-cpu") or {}).get("status", {}).get("phase"),
                 timeout=30, what="the Pipeline's status")
        # Another namespace's Pipeline is not the operator's: never touched.
        assert cluster.get("RayService", "bunko-elsewhere", namespace="elsewhere") is None
        assert "status" not in cluster.get("Pipeline", "bunko-elsewhere", namespace="elsewhere")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode in (0, -15), out

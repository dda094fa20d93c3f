"""An api (`bunko serve --no-worker`) and a worker (`bunko worker`) as separate real processes on the
cluster stores (PostgreSQL, SeaweedFS, Redis, a Milvus server), as a deployment runs them:

    with api_and_worker(tmp_path, s3_server, redis_url, milvus_server, extra_env={...}) as stack:
        stack.wait(lambda: stack.get("/health").status_code == 200, 120, "the api")

Each process logs to ``tmp_path/<name>.log``; a wait fails at once, with the reason, when one of
them exits. The database is made for the test and dropped after it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bunko.testing.servers import free_port
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.polling import wait_for

CLI = "from bunko.cli import main; main()"


@dataclass
class Stack:
    base: str
    admin_password: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def died(self) -> str | None:
        return next((f"{p.args[3:]} exited with {p.returncode}" for p in self.procs if p.poll() is not None), None)

    def wait(self, check: Callable[[], object], timeout: float, what: str) -> Any:
        return wait_for(check, timeout=timeout, what=what, died=self.died)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=120, follow_redirects=True)

    def admin_headers(self, client: httpx.Client) -> dict[str, str]:
        token = client.post("/api/v1/auth/login",
                            json={"username": "admin", "password": self.admin_password}).json()["access_token"]
        return {"Authorization": f"Bearer {token}"}


@contextmanager
def api_and_worker(tmp_path: Path, s3_server: Any, redis_url: str, milvus_server: str, *, db: str,
                   extra_env: Mapping[str, str] = {}) -> Iterator[Stack]:
    db_name, db_url = create_pg_database(db)
    password = secrets.token_urlsafe(16)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUNKO_", "OTEL_"))}
    env.update({
        "BUNKO_MODE": "production", "BUNKO_DATABASE_URL": db_url, "BUNKO_MILVUS_URI": milvus_server,
        "BUNKO_CACHE_URL": redis_url, "BUNKO_JWT_SECRET": secrets.token_hex(32),
        "BUNKO_BOOTSTRAP_ADMIN_USERNAME": "admin", "BUNKO_BOOTSTRAP_ADMIN_PASSWORD": password,
        **{f"BUNKO_{k.upper()}": str(v) for k, v in s3_server.settings_overrides().items()},
        **extra_env,
    })
    stack = Stack(base=f"http://127.0.0.1:{port}", admin_password=password)
    logs = []
    try:
        for name, args in (("api", ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)]),
                           ("worker", ["worker"])):
            log = (tmp_path / f"{name}.log").open("w")
            logs.append(log)
            stack.procs.append(subprocess.Popen([sys.executable, "-c", CLI, *args], stdout=log,
                                                stderr=subprocess.STDOUT, text=True,
                                                env={**env, "BUNKO_DATA_DIR": str(tmp_path / name)}))
        stack.wait(lambda: httpx.get(f"{stack.base}/health", timeout=2).status_code == 200, 120, "the api")
        yield stack
    finally:
        for p in stack.procs:
            p.terminate()
        for p in stack.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()
        drop_pg_database(db_name, db_url)

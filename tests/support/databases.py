"""The test session's databases: the PostgreSQL server (started when it is down), a uniquely named
database per use, and emptying one between tests; the session tag that keeps parallel sessions
apart on the shared servers."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid

import pytest

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
SESSION_TAG = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        time.sleep(0.2)
    return False


def pg_admin_conninfo(dbname: str = "postgres") -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname} connect_timeout=5"


def ensure_postgres() -> None:
    if port_open(PG_HOST, PG_PORT):
        return
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    out = ""
    for version in versions:
        proc = subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        out += proc.stdout + proc.stderr
    if not wait_port(PG_HOST, PG_PORT, 20):
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} and could not be started "
            f"(tried pg_ctlcluster for {versions or 'no clusters in /etc/postgresql'}): {out.strip()}\n"
            "Start it (`pg_ctlcluster --skip-systemctl-redirect 15 main start`) or deselect these "
            'tests with -m "not postgres".',
            pytrace=False,
        )


def create_pg_database(prefix: str) -> tuple[str, str]:
    """Create a uniquely named database; return (name, SQLAlchemy URL)."""
    import psycopg

    ensure_postgres()
    name = f"{prefix}_{SESSION_TAG}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_pg_database(name: str, url: str) -> None:
    import psycopg

    from bunko.store import db

    engine = db.get_engine(url)
    engine.dispose()
    with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(url: str) -> None:
    from sqlalchemy import text

    from bunko.store.db import get_engine

    engine = get_engine(url)
    with engine.begin() as conn:
        names = [
            r[0]
            for r in conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                     "AND tablename <> 'alembic_version'")
            )
        ]
        if names:
            # lock_timeout: a test that leaked an open transaction makes this fail loudly, not hang.
            conn.execute(text("SET LOCAL lock_timeout = '15s'"))
            conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))

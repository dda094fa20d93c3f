"""``bunko backup`` and ``bunko restore``: the database, the objects and the vectors, in one folder
with a manifest of checksums.

- Database: SQLite through its online backup API (a consistent copy while Bunko runs);
  PostgreSQL through the server's own ``pg_dump --format=custom`` (restored with ``pg_restore``).
- Objects: every object as stored, so sealed objects (BUNKO_ENCRYPTION_KEY) stay sealed in the
  backup and need the same key after a restore.
- Vectors: exported from Milvus row by row (the stored dense vectors, terms, text and ACL
  fields; Milvus recomputes the BM25 sparse vectors from the terms on insert), so a restore never
  re-embeds anything: it costs one insert per chunk, not one model call per chunk.

The manifest (``manifest.json``) is written last: a backup interrupted before it is not a backup,
and ``restore`` checks every file's size and SHA-256 against it before it touches anything.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bunko.errors import ConfigError, InvalidInput, StoreUnavailable
from bunko.settings import Settings
from bunko.store.db import Chunk, Collection, Document
from bunko.store.vectors import IndexType

if TYPE_CHECKING:
    from bunko.runtime import Runtime
    from bunko.store.objects import ObjectStore

FORMAT = 1
MANIFEST = "manifest.json"
_BATCH = 1000


@dataclass
class Manifest:
    format: int
    created_at: str
    bunko_version: str
    database: str  # "sqlite" | "postgresql"
    counts: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # relative path -> {bytes, sha256}
    vectors: dict[str, dict[str, Any]] = field(default_factory=dict)  # collection -> {dim, index_type, rows}
    seconds: float = 0.0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _libpq_url(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as pg_dump / pg_restore take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database:
        raise ConfigError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _raw_objects(store: ObjectStore) -> ObjectStore:
    """The store under any client-side encryption: objects are copied as they are at rest."""
    return getattr(store, "inner", store)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ConfigError(f"{name} is not installed; it comes with PostgreSQL's client tools "
                          "(Debian: postgresql-client) and must match the server's major version or be newer")
    return path


# --- backup --------------------------------------------------------------------------------------


def backup(rt: Runtime, out: Path, *, database_dump: Path | None = None) -> Manifest:
    """Write a backup of ``rt``'s stores into the new folder ``out``. ``database_dump``: a
    ``pg_dump --format=custom`` file made just before by a pg_dump of the server's own version (the
    chart's CronJob runs it from the PostgreSQL image), used instead of running pg_dump here."""
    from importlib.metadata import version

    started = time.monotonic()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise InvalidInput(f"{out} is not empty; back up into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    url = rt.settings.resolved_database_url
    kind = make_url(url).get_backend_name()
    manifest = Manifest(FORMAT, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), version("bunko"), kind)
    if kind == "sqlite":
        src = sqlite3.connect(_sqlite_path(url))
        dst = sqlite3.connect(out / "database.sqlite")
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
    elif kind == "postgresql" and database_dump is not None:
        if not database_dump.is_file() or database_dump.read_bytes()[:5] != b"PGDMP":
            raise InvalidInput(f"{database_dump} is not a pg_dump --format=custom file")
        shutil.copyfile(database_dump, out / "database.pgdump")
    elif kind == "postgresql":
        proc = subprocess.run([_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                               "--file", str(out / "database.pgdump"), "--dbname", _libpq_url(url)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise StoreUnavailable(f"pg_dump failed: {proc.stderr.strip()[-500:]}")
    else:
        raise ConfigError(f"backing up a {kind} database is not supported")

    with rt.sessions() as s:
        collections = list(s.scalars(select(Collection)))
        manifest.counts = {
            "collections": len(collections),
            "documents": int(s.scalar(select(func.count()).select_from(Document)) or 0),
            "chunks": int(s.scalar(select(func.count()).select_from(Chunk)) or 0),
        }
    store = _raw_objects(rt.objects)
    objects = 0
    for key in store.list(""):
        target = out / "objects" / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get(key))
        objects += 1
    manifest.counts["objects"] = objects
    for coll in collections:
        manifest.vectors[coll.vector_collection] = _export_vectors(rt, coll.vector_collection, out)

    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        manifest.files[str(path.relative_to(out))] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    manifest.seconds = round(time.monotonic() - started, 3)
    (out / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


def _export_vectors(rt: Runtime, name: str, out: Path) -> dict[str, Any]:
    vectors = rt.vectors
    if not vectors.has(name):
        return {"dim": 0, "index_type": "", "rows": 0}
    dim, index_type, _ = vectors.layout(name)
    rows = 0
    target = out / "vectors" / f"{name}.jsonl.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(target, "wt", encoding="utf-8") as f:
        for batch in vectors.iter_rows(name, _BATCH):
            for row in batch:
                row = {k: (list(map(float, v)) if k == "dense" else v) for k, v in dict(row).items()}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                rows += 1
    return {"dim": dim, "index_type": index_type or "", "rows": rows}


def prune(parent: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest complete backups (folders with a manifest) in ``parent``."""
    done = sorted((p for p in Path(parent).iterdir() if (p / MANIFEST).is_file()),
                  key=lambda p: (json.loads((p / MANIFEST).read_text(encoding="utf-8"))["created_at"], p.name))
    old = done[:-keep] if keep else []
    for folder in old:
        shutil.rmtree(folder)
    return old


# --- verify and restore --------------------------------------------------------------------------


def verify(folder: Path) -> Manifest:
    """The backup's manifest, after every file it lists is checked; refuses a partial or altered one."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise InvalidInput(f"{folder} is not a complete Bunko backup: {MANIFEST} is missing "
                           "(a backup writes it last, so an interrupted backup has none)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest(**data)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{path} is not a Bunko backup manifest: {type(exc).__name__}") from None
    if manifest.format != FORMAT:
        raise InvalidInput(f"{folder}: backup format {manifest.format} is not the {FORMAT} this Bunko reads")
    problems = []
    for rel, meta in sorted(manifest.files.items()):
        file = folder / rel
        if not file.is_file():
            problems.append(f"{rel} is missing")
        elif file.stat().st_size != meta["bytes"] or _sha256(file) != meta["sha256"]:
            problems.append(f"{rel} differs from its checksum")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise InvalidInput(f"{folder} is damaged and was not restored: {shown}")
    return manifest


def restore_database(settings: Settings, folder: Path, manifest: Manifest, *, force: bool = False) -> None:
    """Put the backup's database in place of ``settings``' (before anything opens it)."""
    url = settings.resolved_database_url
    kind = make_url(url).get_backend_name()
    if kind != manifest.database:
        raise InvalidInput(f"the backup holds a {manifest.database} database; BUNKO_DATABASE_URL is {kind}")
    _refuse_if_in_use(url, force)
    if kind == "sqlite":
        path = _sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        shutil.copyfile(folder / "database.sqlite", path)
        return
    proc = subprocess.run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
                           "--single-transaction", "--dbname", _libpq_url(url), str(folder / "database.pgdump")],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise StoreUnavailable(f"pg_restore failed: {proc.stderr.strip()[-500:]}")


def _refuse_if_in_use(url: str, force: bool) -> None:
    from sqlalchemy import create_engine, inspect

    if make_url(url).get_backend_name() == "sqlite" and not _sqlite_path(url).exists():
        return  # a destroyed (or new) data directory

    engine = create_engine(url)
    try:
        if "documents" not in inspect(engine).get_table_names():
            return
        with engine.connect() as conn:
            n = int(conn.execute(select(func.count()).select_from(Document.__table__)).scalar() or 0)
    finally:
        engine.dispose()
    if n and not force:
        raise InvalidInput(f"the target database already holds {n} documents; restore into empty stores, "
                           "or pass --force to replace everything in them")


def restore_stores(rt: Runtime, folder: Path, manifest: Manifest) -> None:
    """Objects and vectors from the backup into ``rt``'s stores (the database is restored first)."""
    store = _raw_objects(rt.objects)
    for key in store.list(""):
        store.delete(key)
    root = folder / "objects"
    for rel in manifest.files:
        if rel.startswith("objects/"):
            store.put(rel.removeprefix("objects/"), (root / rel.removeprefix("objects/")).read_bytes())
    vectors = rt.vectors
    for name, meta in manifest.vectors.items():
        if vectors.has(name):
            vectors.drop(name)
        if not meta["dim"]:
            continue
        index_type: IndexType = "IVF_FLAT"
        if meta["index_type"] == "FLAT" or (meta["index_type"] == "HNSW" and rt.settings.milvus_uri):
            index_type = meta["index_type"]  # the embedded engine builds FLAT and IVF_FLAT only
        vectors.ensure_collection(name, int(meta["dim"]), index_type=index_type)
        batch: list[dict[str, Any]] = []
        with gzip.open(folder / "vectors" / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
            for line in f:
                batch.append(json.loads(line))
                if len(batch) >= _BATCH:
                    vectors.upsert_rows(name, batch)
                    batch = []
        if batch:
            vectors.upsert_rows(name, batch)
        vectors.flush(name)
        if (restored := vectors.count(name)) != meta["rows"]:
            raise StoreUnavailable(f"vector collection {name}: {restored} rows restored of {meta['rows']}")

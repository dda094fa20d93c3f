"""The ``bunko`` command: ingest, ask, status, worker, demo, serve, and the sub-apps of the edges."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bunko.errors import BunkoError, ConfigError

app = typer.Typer(help="Bunko (文庫): question answering over Japanese PDFs with cited sources.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
def _console(stderr: bool = False) -> Console:
    """Rich's console; when output is not a terminal (a pipe, a CI log) it is wide enough that
    tables do not wrap their cells, and progress is printed as plain lines (see _process)."""
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=200)


console = _console()
err = _console(stderr=True)

# Exit codes: 1 = a command-level failure, 2 = bad input or configuration, 3 = a dependency is down.
EXIT_FAILED, EXIT_INVALID, EXIT_UNAVAILABLE = 1, 2, 3


def _runtime() -> Any:
    from bunko.runtime import Runtime
    from bunko.settings import Settings

    try:
        return Runtime(Settings())
    except ConfigError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(EXIT_INVALID) from None


@contextmanager
def _errors() -> Iterator[None]:
    """The CLI edge of the error hierarchy: a message and an exit code, never a traceback."""
    from bunko.errors import Unavailable

    try:
        yield
    except BunkoError as exc:
        err.print(f"[red]error ({exc.code}):[/red] {exc.message}")
        raise typer.Exit(EXIT_UNAVAILABLE if isinstance(exc, Unavailable) else EXIT_INVALID) from exc


def _cli_principal(rt: Any, as_user: str | None) -> Any:
    """The local CLI acts as an administrator unless told to act as a named user."""
    from sqlalchemy import select

    from bunko.domain import Principal
    from bunko.store.db import User

    if as_user is None:
        return Principal(user_id="cli", role="admin")
    with rt.sessions() as s:
        user = s.scalar(select(User).where(User.username == as_user))
    if user is None:
        raise BunkoError(f"no user {as_user!r}; create one with `bunko users create`")
    return Principal(user_id=user.id, role=user.role)


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() == ".pdf"))
        elif p.exists():
            out.append(p)
        else:
            raise BunkoError(f"{p} does not exist")
    return out


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="PDF files or folders of PDFs")],
    collection: Annotated[str, typer.Option("--collection", "-c")] = "default",
    owner: Annotated[str, typer.Option(help="owner id recorded on the documents")] = "cli",
    visibility: Annotated[str, typer.Option(help="private | collection | roles")] = "collection",
    wait: Annotated[bool, typer.Option(help="process now with an in-process worker")] = True,
) -> None:
    """Submit PDFs and (by default) process them here, with a progress bar per document."""
    from bunko.collections import DEFAULT_COLLECTION, ensure_default_collection, get_collection
    from bunko.errors import DuplicateDocument, InvalidDocument
    from bunko.ingest.submit import submit_document

    rt = _runtime()
    with _errors():
        if collection == DEFAULT_COLLECTION:
            ensure_default_collection(rt)
        else:
            get_collection(rt, collection)
        files = _expand(paths)
        submitted: list[tuple[str, str]] = []
        refused = 0
        for f in files:
            try:
                doc = submit_document(rt, collection=collection, path=f, filename=f.name, owner_id=owner,
                                      visibility=visibility)
                submitted.append((doc.id, f.name))
            except DuplicateDocument as exc:
                console.print(f"[yellow]skip[/yellow] {f.name}: already ingested ({exc.existing_id})")
            except InvalidDocument as exc:
                refused += 1
                console.print(f"[red]refused[/red] {f.name}: {exc.message}")
        if wait and submitted:
            _process_with_progress(rt, submitted)
        elif submitted:
            console.print(f"queued {len(submitted)} document(s); run `bunko worker` to process them")
    if refused:
        raise typer.Exit(EXIT_INVALID)


def _report_lines(rt: Any, submitted: list[tuple[str, str]], worker: threading.Thread) -> int:
    """Progress for a log: one line per document when it starts, completes or fails."""
    from bunko.store.db import Document

    names = dict(submitted)
    started: set[str] = set()
    pending = set(names)
    failed = 0
    t0 = time.monotonic()
    while pending and worker.is_alive():
        with rt.sessions() as s:
            for doc_id in sorted(pending):
                d = s.get(Document, doc_id)
                if d is None:
                    pending.discard(doc_id)
                elif d.status in ("completed", "failed"):
                    pending.discard(doc_id)
                    elapsed = time.monotonic() - t0
                    if d.status == "failed":
                        failed += 1
                        console.print(f"{names[doc_id]}: failed after {elapsed:.1f} s: {d.error}", highlight=False)
                    else:
                        console.print(f"{names[doc_id]}: completed, {d.page_count} page(s), {d.chunk_count} "
                                      f"chunk(s), {elapsed:.1f} s", highlight=False)
                elif d.status == "processing" and doc_id not in started:
                    started.add(doc_id)
                    console.print(f"{names[doc_id]}: processing", highlight=False)
        time.sleep(0.3)
    return failed


def _progress_bars(rt: Any, submitted: list[tuple[str, str]], worker: threading.Thread) -> int:
    """Progress on a terminal: a live bar per document with its stage."""
    from bunko.store.db import Document

    failed = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.fields[stage]}"), TimeElapsedColumn(), console=console) as bar:
        tasks = {doc_id: bar.add_task(name[:40], total=1.0, stage="queued") for doc_id, name in submitted}
        pending = set(tasks)
        while pending:
            with rt.sessions() as s:
                for doc_id in list(pending):
                    d = s.get(Document, doc_id)
                    if d is None:
                        pending.discard(doc_id)
                        continue
                    stage = d.stage if d.status != "failed" else f"[red]failed: {d.error}[/red]"
                    bar.update(tasks[doc_id], completed=d.progress, stage=stage)
                    if d.status in ("completed", "failed"):
                        pending.discard(doc_id)
                        failed += d.status == "failed"
            if not worker.is_alive():
                break
            time.sleep(0.3)
    return failed


def _process_with_progress(rt: Any, submitted: list[tuple[str, str]]) -> None:
    from bunko.ingest.collection_jobs import collection_handlers
    from bunko.ingest.pipeline import make_processor
    from bunko.ingest.worker import run_worker

    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(rt.settings, make_processor(rt)),
                              kwargs={"handlers": collection_handlers(rt), "stop": stop, "worker_id": "cli",
                                      "sessions": rt.sessions}, daemon=True)
    worker.start()
    failed = 0
    try:
        if not console.is_terminal:
            failed = _report_lines(rt, submitted, worker)
        else:
            failed = _progress_bars(rt, submitted, worker)
    finally:
        stop.set()
        worker.join(timeout=30)
    if failed:
        err.print(f"[red]{failed} document(s) failed[/red]; see `bunko status`")
        raise typer.Exit(EXIT_FAILED)


@app.command()
def status(collection: Annotated[str | None, typer.Option("--collection", "-c")] = None) -> None:
    """Documents with their status, stage and progress."""
    from bunko.ingest.submit import list_documents

    rt = _runtime()
    with _errors():
        docs, total = list_documents(rt, collection=collection, limit=500)
    table = Table("id", "title", "status", "stage", "progress", "pages", "chunks", "error")
    for d in docs:
        table.add_row(d.id[:12], d.title[:30], d.status, d.stage, f"{d.progress:.0%}", str(d.page_count),
                      str(d.chunk_count), (d.error or "")[:60])
    console.print(table)
    console.print(f"{total} document(s)")


@app.command()
def worker(once: Annotated[bool, typer.Option(help="exit when the queue is empty")] = False) -> None:
    """Run an ingestion worker: claim jobs from the database queue until stopped."""
    from bunko import tracing
    from bunko.ingest.collection_jobs import collection_handlers
    from bunko.ingest.pipeline import make_processor
    from bunko.ingest.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tracing.configure("bunko-worker")  # before the runtime: its engines get instrumented
    rt = _runtime()
    with _errors():
        run_worker(rt.settings, make_processor(rt), handlers=collection_handlers(rt), once=once, sessions=rt.sessions)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="a question in Japanese")],
    collection: Annotated[str, typer.Option("--collection", "-c")] = "default",
    stream: Annotated[bool, typer.Option(help="print the answer as it is generated")] = False,
    as_user: Annotated[str | None, typer.Option("--as-user", help="answer with this user's access")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the response record as JSON")] = False,
) -> None:
    """Answer a question over the ingested documents, with page-level citations."""

    from bunko.qa import ask as qa_ask
    from bunko.qa import ask_stream

    rt = _runtime()
    with _errors():
        principal = _cli_principal(rt, as_user)
        if stream and not as_json:
            answer: dict[str, Any] = {}
            for ev in ask_stream(rt, question, principal=principal, collection=collection):
                if ev["type"] == "token":
                    console.print(ev["text"], end="", soft_wrap=True, highlight=False)
                elif ev["type"] == "done":
                    answer = ev["answer"]
            console.print()
            _print_sources(answer)
            return
        result = qa_ask(rt, question, principal=principal, collection=collection).to_dict()
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    else:
        _print_answer(question, result)


def _print_answer(question: str, a: dict[str, Any]) -> None:
    console.rule(f"[bold]Q:[/bold] {question}")
    console.print(a["answer"], highlight=False)
    _print_sources(a)


def _print_sources(a: dict[str, Any]) -> None:
    if not a:
        return
    table = Table("#", "文書", "頁", "score", "snippet", title=f"sources — mode {a.get('mode')}, "
                  f"confidence {a.get('confidence', 0):.2f}, {a.get('processing_time_ms', 0):.0f} ms")
    for i, s in enumerate(a.get("sources", []), 1):
        table.add_row(str(i), s["title"][:24], str(s["page"]), f"{s['score']:.3f}", s["snippet"][:60])
    console.print(table)


@app.command()
def samples(out: Annotated[Path, typer.Argument(help="folder to write the sample PDFs to")]) -> None:
    """Write the project's sample Japanese PDFs (born-digital with a table, scanned, ...)."""
    from bunko.samples import make_samples

    for name, path in make_samples(out).items():
        console.print(f"{name}: {path}")


@app.command()
def demo() -> None:
    """Build the sample PDFs, ingest them, and answer questions about a table and a scanned page."""
    from bunko.demo import run_demo

    rt = _runtime()
    with _errors():
        run_demo(rt, console, ingest=lambda paths: _demo_ingest(rt, paths))


def _demo_ingest(rt: Any, paths: list[Path]) -> None:
    from bunko.collections import ensure_default_collection
    from bunko.errors import DuplicateDocument
    from bunko.ingest.submit import submit_document

    ensure_default_collection(rt)
    submitted = []
    for p in paths:
        try:
            submitted.append((submit_document(rt, collection="default", path=p, filename=p.name,
                                              owner_id="demo").id, p.name))
        except DuplicateDocument:
            console.print(f"{p.name}: already ingested")
    if submitted:
        _process_with_progress(rt, submitted)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (the API and worker also do this on start)."""
    _runtime()
    console.print("database is up to date")


@app.command("backup")
def backup_command(
    folder: Annotated[Path, typer.Argument(help="a new folder for the backup")],
    database_dump: Annotated[Path | None, typer.Option(
        help="a pg_dump --format=custom file to take instead of running pg_dump here")] = None,
    keep: Annotated[int, typer.Option(help="then delete all but this many newest backups beside FOLDER "
                                           "(0: keep all)", min=0)] = 0,
) -> None:
    """Back up the database, the objects and the vectors into FOLDER, with a manifest of checksums."""
    from bunko.backup import backup, prune

    rt = _runtime()
    with _errors():
        m = backup(rt, folder, database_dump=database_dump)
        removed = prune(folder.parent, keep) if keep else []
    for old in removed:
        console.print(f"removed the older backup {old}")
    console.print(f"backed up {m.counts['documents']} documents, {m.counts['chunks']} chunks, "
                  f"{m.counts['objects']} objects and {sum(v['rows'] for v in m.vectors.values())} vectors "
                  f"into {folder} in {m.seconds:.1f} s")


@app.command("restore")
def restore_command(
    folder: Annotated[Path, typer.Argument(help="a folder `bunko backup` wrote")],
    force: Annotated[bool, typer.Option(help="replace stores that already hold documents")] = False,
    skip_database: Annotated[bool, typer.Option(
        help="the database was restored already (pg_restore of database.pgdump with the server's version)")] = False,
) -> None:
    """Restore a backup: every file is checked against the manifest first; a damaged or partial
    backup is refused before anything is changed."""
    from bunko.backup import restore_database, restore_stores, verify
    from bunko.runtime import Runtime
    from bunko.settings import Settings

    started = time.monotonic()
    with _errors():
        manifest = verify(folder)
        settings = Settings()
        if not skip_database:
            restore_database(settings, folder, manifest, force=force)
        rt = Runtime(settings)
        try:
            restore_stores(rt, folder, manifest)
        finally:
            rt.close()
    console.print(f"restored {manifest.counts['documents']} documents from {folder} "
                  f"in {time.monotonic() - started:.1f} s")


@app.command("reseal-objects")
def reseal_objects() -> None:
    """Rewrite every stored object under the current BUNKO_ENCRYPTION_KEY (after a key rotation, or
    after turning encryption on): objects sealed with a previous key, or not sealed, are resealed."""
    from bunko.errors import ConfigError
    from bunko.store.encryption import EncryptedObjectStore

    rt = _runtime()
    with _errors():
        if not isinstance(rt.objects, EncryptedObjectStore):
            raise ConfigError("objects are not encrypted: set BUNKO_ENCRYPTION_KEY (or BUNKO_ENCRYPTION_KEY_FILE)")
        console.print(f"{rt.objects.reseal()} objects resealed under the current key")


@app.command()
def collections() -> None:
    """List collections with their document counts."""
    from bunko.collections import list_collections

    rt = _runtime()
    table = Table("name", "documents", "embedding model", "index version", "vector collection")
    for c, n in list_collections(rt):
        table.add_row(c.name, str(n), c.embedding_model, _index_version(rt, c.name), c.vector_collection)
    console.print(table)


@app.command()
def reindex(
    collection: Annotated[str | None, typer.Argument(help="a collection; all stale ones when left out")] = None,
    force: Annotated[bool, typer.Option(help="rebuild even when the index is current")] = False,
) -> None:
    """Rebuild collections whose index was made by an older recipe or another embedding model,
    from the stored pages (no extraction or OCR again); they keep answering meanwhile."""
    from bunko.collections import get_collection, list_collections
    from bunko.ingest.reindex import needs_reindex, reindex_collection

    rt = _runtime()
    with _errors():
        names = [collection] if collection else [c.name for c, _ in list_collections(rt)]
        for name in names:
            why = needs_reindex(rt, get_collection(rt, name))
            if not why and not force:
                console.print(f"{name}: index is current (version {_index_version(rt, name)})")
                continue
            console.print(f"{name}: reindexing ({'; '.join(why) or 'forced'})")
            report = reindex_collection(rt, name, force=force)
            console.print(f"{name}: {report.documents} document(s), {report.chunks} chunk(s), index version "
                          f"{report.from_version} -> {report.to_version} in {report.seconds:.1f} s"
                          + (f"; {report.requeued} in-flight document(s) re-queued" if report.requeued else ""))


@app.command()
def pii(
    policy: Annotated[str | None, typer.Argument(help="off | flag | redact; left out: show what was found")] = None,
    collection: Annotated[str, typer.Option("--collection", "-c")] = "default",
) -> None:
    """A collection's personal-information policy. With POLICY, set it: every document is processed
    again under it (flag records what each page holds; redact also replaces it in what is indexed,
    shown and sent to an LLM). Without, list the pages where something was found."""
    from bunko.collections import DEFAULT_COLLECTION, ensure_default_collection
    from bunko.ingest.privacy import findings_report, set_pii_policy

    rt = _runtime()
    with _errors():
        if collection == DEFAULT_COLLECTION:
            ensure_default_collection(rt)  # as `bunko ingest` does: a new data directory has none yet
        if policy is not None:
            change = set_pii_policy(rt, collection, policy)
            console.print(f"{change.collection}: pii {change.old} -> {change.new}; "
                          f"{change.requeued} document(s) queued to be processed again")
            return
        report = findings_report(rt, collection)
        console.print(f"{report.collection}: pii policy {report.policy}")
        table = Table("document", "page", "found", "redacted")
        for p in report.pages:
            found = ", ".join(f"{entity} ×{n}" for entity, n in sorted(p.counts.items()))
            table.add_row(p.filename, str(p.page_no), found, "yes" if p.redacted else "no")
        console.print(table)


def _index_version(rt: Any, name: str) -> str:
    from bunko.collections import collection_config, get_collection

    return collection_config(get_collection(rt, name)).index_version


def _mount(load: Callable[[], typer.Typer], name: str, help_: str) -> None:
    """Sub-apps of the edges (API users, Ray Serve, operator) mount only if their package imports."""
    try:
        sub = load()
    except ImportError as exc:  # an optional extra is missing or broken
        missing = exc

        def _unavailable() -> None:
            err.print(f"[red]`bunko {name}` is unavailable:[/red] {missing}")
            raise typer.Exit(EXIT_INVALID)

        app.command(name=name, help=help_)(_unavailable)
        return
    app.add_typer(sub, name=name, help=help_)


# Plain imports inside functions: the import linter sees them, and a process that lacks an edge's
# extra still starts (the command then says what is missing).
def _users_app() -> typer.Typer:
    from bunko.api.cli import users_app

    return users_app


def _serving_app() -> typer.Typer:
    from bunko.serving.cli import serving_app

    return serving_app


def _operator_app() -> typer.Typer:
    from bunko.operator.cli import app as operator_app

    return operator_app


def _register_optional() -> None:
    _mount(_users_app, "users", "Manage users and roles.")
    _mount(_serving_app, "serving", "Run the Ray Serve model application.")
    _mount(_operator_app, "operator", "Run the Kubernetes operator.")


# How long the api keeps an idle connection open. It must outlast every client's and proxy's own
# idle timeout (httpx 5 s, ingress-nginx upstream keep-alive 60 s) so the client side always closes
# first. Uvicorn's default, 5 s, races httpx's: a request sent on a connection the server is just
# closing fails with a ReadError (seen in make e2e: 2 of 881 queries under load); behind nginx it
# is a 502.
KEEP_ALIVE_S = 75


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    worker_thread: Annotated[bool, typer.Option("--worker/--no-worker",
                                                help="run an ingestion worker in this process")] = True,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Serve the REST API and the web page (uvicorn)."""
    import os

    import uvicorn

    os.environ["BUNKO_API_START_WORKER"] = "1" if worker_thread else "0"
    uvicorn.run("bunko.api.main:create_app", factory=True, host=host, port=port, workers=workers,
                proxy_headers=True, log_config=None, timeout_keep_alive=KEEP_ALIVE_S)


_register_optional()


def _error_log() -> Path:
    """Where the CLI writes what it does not show: the traceback of an unexpected failure."""
    import os

    from bunko.settings import Settings

    # Read directly, not through Settings: this runs when the settings themselves are invalid.
    base = Path(os.environ.get("BUNKO_DATA_DIR") or Settings.model_fields["data_dir"].default)
    try:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        return base / "cli-errors.log"
    except OSError:
        import tempfile

        return Path(tempfile.gettempdir()) / f"bunko-cli-errors-{os.getuid()}.log"


def main() -> None:
    """The ``bunko`` console script: every failure is a message and an exit code (1 failed,
    2 invalid input or configuration, 3 a dependency is down), never a traceback; the detail of an
    unexpected one goes to a log file the message names."""
    import os

    from bunko.errors import Unavailable

    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except BunkoError as exc:
        err.print(f"[red]error ({exc.code}):[/red] {exc.message}")
        sys.exit(EXIT_UNAVAILABLE if isinstance(exc, Unavailable) else EXIT_INVALID)
    except Exception as exc:
        import traceback

        from sqlalchemy.exc import InterfaceError, OperationalError

        if type(exc).__name__ == "Abort":  # Ctrl-C at a prompt (typer vendors its own click)
            err.print("aborted")
            sys.exit(130)
        usage_code = getattr(exc, "exit_code", None)
        if hasattr(exc, "show") and isinstance(usage_code, int):
            exc.show()  # a usage error: click's own message, e.g. "Missing argument 'QUESTION'"
            sys.exit(usage_code)
        if isinstance(exc, OperationalError | InterfaceError):
            first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            err.print(f"[red]error (store_unavailable):[/red] the database is unreachable ({first}); "
                      "check BUNKO_DATABASE_URL and that the server is up", highlight=False)
            sys.exit(EXIT_UNAVAILABLE)

        log = _error_log()
        with open(log, "a", encoding="utf-8", opener=lambda p, f: os.open(p, f, 0o600)) as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} bunko {' '.join(sys.argv[1:])}\n")
            traceback.print_exc(file=fh)
        err.print(f"[red]unexpected error:[/red] {type(exc).__name__}: {exc}", highlight=False)
        err.print(f"the details are in {log}; please include them when you report it")
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

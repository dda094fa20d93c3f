"""The worker loop: claim a job, process its document under a lease, record the outcome.

``process(document_id, heartbeat)`` is the pipeline. It should call ``heartbeat()`` between pages
and stages: that renews the lease and raises ``LeaseLost`` when another worker has taken the job
over (this one was presumed dead), or ``WorkerStopping`` when the worker is shutting down — either
way the pipeline stops at a safe point and the job is left to its new owner or released.
A background thread also renews the lease every ``lease_s / 3``, so one long step (a slow OCR page)
does not cost the lease while the process is alive; only a dead or hung worker loses it.

Failures: errors about the document itself (``InvalidDocument`` family, duplicates) fail the job
at once; everything else (``Unavailable`` family, unknown exceptions) is retried with exponential
backoff, up to ``Settings.job_max_attempts``. SIGTERM (Kubernetes stopping the pod) lets the current
job stop at its next heartbeat and gives it back to the queue without counting the attempt.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bunko import tracing
from bunko.errors import BunkoError, DuplicateDocument, InvalidDocument, InvalidInput, NotFound, Unavailable
from bunko.ingest import jobs, worker_health
from bunko.ingest.types import Heartbeat
from bunko.ingest.worker_health import Liveness
from bunko.settings import JobPolicy, Settings
from bunko.store.db import session_factory

log = logging.getLogger(__name__)

# Runs one job on its target (jobs.ClaimedJob.target: a document's id, a collection's, or a vector
# collection's name), calling the heartbeat between steps.
Process = Callable[[str, Heartbeat], None]

# Errors that say the document cannot succeed however often it is retried.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (InvalidDocument, DuplicateDocument, NotFound,
                                                     InvalidInput)


class LeaseLost(Exception):
    """Another worker holds this job now; abandon it without recording anything."""


class WorkerStopping(Exception):
    """The worker is shutting down; stop at this safe point (the job is released to the queue)."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, PERMANENT_ERRORS)


def _event(level: int, event: str, **fields: Any) -> None:
    # One line per event, key=value pairs, easy to grep and to parse.
    log.log(level, "%s %s", event, " ".join(f"{k}={v}" for k, v in fields.items()),
            extra={"event": event, "fields": fields})


class _Lease:
    """Keeps one job's lease alive from a background thread and answers ``heartbeat()`` calls."""

    def __init__(self, sessions: jobs.Sessions, job: jobs.ClaimedJob, lease_s: float, stop: threading.Event,
                 liveness: Liveness) -> None:
        self.sessions, self.job, self.lease_s, self.stop = sessions, job, lease_s, stop
        self.liveness = liveness
        self.lost = False
        self._last_renewal = time.monotonic()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job.id}", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _renew(self) -> bool:
        with self._lock:
            if self.lost:
                return False
            try:
                ok = jobs.heartbeat(self.sessions, self.job.id, self.job.worker_id, self.lease_s)
            except SQLAlchemyError as e:
                # The database is briefly unreachable: keep working; if the lease expires and
                # someone takes the job over, the next renewal says so.
                _event(logging.WARNING, "job.heartbeat_error", job=self.job.id, error=type(e).__name__)
                return True
            if ok:
                self._last_renewal = time.monotonic()
            else:
                self.lost = True
                _event(logging.WARNING, "job.lease_lost", job=self.job.id, target=self.job.target)
            return ok

    def _run(self) -> None:
        while not self._done.wait(self.lease_s / 3):
            self.liveness.beat()
            if not self._renew():
                return

    def heartbeat(self) -> None:
        if self.lost:
            raise LeaseLost(f"job {self.job.id} was taken over by another worker")
        if self.stop.is_set():
            raise WorkerStopping(f"worker stopping; job {self.job.id} goes back to the queue")
        # Calls between pages are frequent; touch the database only when the lease is getting old.
        if time.monotonic() - self._last_renewal > self.lease_s / 6 and not self._renew():
            raise LeaseLost(f"job {self.job.id} was taken over by another worker")


def run_worker(
    settings: Settings,
    process: Process,
    *,
    handlers: Mapping[str, Process] | None = None,
    worker_id: str | None = None,
    stop: threading.Event | None = None,
    once: bool = False,
    drain: bool = False,
    sessions: jobs.Sessions | None = None,
) -> int:
    """Process jobs until ``stop`` is set (or SIGTERM). Returns the number of jobs handled.

    ``sessions``: the process's session factory (``Runtime.sessions``); by default one for
    ``settings``' database.

    ``process`` runs the ingest jobs; ``handlers`` the other kinds by name (the collection-level jobs
    the operator queues, bunko.ingest.collection_jobs). A job of a kind the worker has no handler
    for fails with a message that says so.

    ``once``: handle at most one job, then return (returns at once if none is ready).
    ``drain``: return as soon as no job is ready (delayed retries still in backoff are not waited for).
    """
    sessions = sessions or session_factory(settings.resolved_database_url)
    worker_id = worker_id or default_worker_id()
    stop = stop or threading.Event()
    restore = _install_sigterm(stop)
    handled = 0
    policy = settings.jobs
    liveness = Liveness(policy.max_silence_s)
    probes = worker_health.serve(liveness, policy.health_port) if policy.health_port else None
    _event(logging.INFO, "worker.start", worker=worker_id, lease_s=policy.lease_s, health_port=policy.health_port)
    try:
        while not stop.is_set():
            liveness.beat()
            try:
                job = jobs.claim(sessions, worker_id, policy.lease_s, max_attempts=policy.max_attempts)
            except SQLAlchemyError as e:
                _event(logging.WARNING, "worker.claim_error", worker=worker_id, error=type(e).__name__)
                stop.wait(policy.poll_s)
                continue
            if job is None:
                if once or drain:
                    break
                stop.wait(policy.poll_s)
                continue
            try:
                handler = process if job.kind == jobs.INGEST else (handlers or {}).get(job.kind)
                _run_job(policy, sessions, job, handler, stop, liveness)
            except SQLAlchemyError as e:
                # The outcome could not be recorded; the lease runs out and the job is retried.
                _event(logging.ERROR, "worker.record_error", worker=worker_id, job=job.id,
                       error=type(e).__name__)
                stop.wait(policy.poll_s)
            handled += 1
            if once:
                break
    finally:
        restore()
        if probes is not None:
            probes.shutdown()
            probes.server_close()
        _event(logging.INFO, "worker.stop", worker=worker_id, handled=handled)
    return handled


def _run_job(policy: JobPolicy, sessions: jobs.Sessions, job: jobs.ClaimedJob, process: Process | None,
             stop: threading.Event, liveness: Liveness) -> None:
    target = {jobs.REINDEX: "collection", jobs.DROP_VECTORS: "vector_collection"}.get(job.kind, "document")
    fields = {"job": job.id, "kind": job.kind, target: job.target, "attempt": job.attempts,
              "worker": job.worker_id}
    _event(logging.INFO, "job.start", **fields)
    started = time.monotonic()
    attributes = {f"bunko.{target}_id": job.target, "bunko.job_id": job.id, "bunko.attempt": job.attempts}
    with (
        tracing.job_span(job.kind, job.trace_context, **attributes),
        _Lease(sessions, job, policy.lease_s, stop, liveness) as lease,
    ):
        try:
            if process is None:
                raise InvalidInput(f"this worker runs no {job.kind} jobs; start it with `bunko worker`")
            process(job.target, lease.heartbeat)
        except BaseException as exc:
            # The pipeline may wrap our signals in its own errors; look down the cause chain.
            if _caused_by(exc, WorkerStopping):
                released = jobs.release(sessions, job.id, job.worker_id)
                _event(logging.INFO, "job.released", released=released, **fields)
                return
            if lease.lost or _caused_by(exc, LeaseLost):
                _event(logging.WARNING, "job.abandoned", reason="lease_lost", **fields)
                if isinstance(exc, Exception):
                    return
                raise
            if not isinstance(exc, Exception):
                # KeyboardInterrupt / SystemExit: give the job back, then let the interpreter stop.
                jobs.release(sessions, job.id, job.worker_id)
                _event(logging.INFO, "job.released", reason=type(exc).__name__, **fields)
                raise
            _record_failure(policy, sessions, job, exc, fields)
            return
    if lease.lost:
        _event(logging.WARNING, "job.abandoned", reason="lease_lost_after_finish", **fields)
        return
    done = jobs.complete(sessions, job.id, job.worker_id)
    _event(logging.INFO, "job.done", recorded=done, seconds=round(time.monotonic() - started, 3), **fields)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _record_failure(policy: JobPolicy, sessions: jobs.Sessions, job: jobs.ClaimedJob, exc: Exception,
                    fields: dict[str, Any]) -> None:
    permanent = is_permanent(exc)
    if isinstance(exc, Unavailable) and not permanent:
        delay = min(60.0, max(1.0, policy.backoff_s) * 4)
        if jobs.defer(sessions, job.id, job.worker_id, exc.message, delay_s=delay):
            _event(logging.WARNING, "job.deferred", code=exc.code, delay_s=delay,
                   error=repr(exc.message[:300]), **fields)
        return
    if isinstance(exc, BunkoError):
        message, code = exc.message, exc.code
    else:
        message, code = f"internal error: {type(exc).__name__}: {exc}", "internal_error"
        log.exception("job.error job=%s %s=%s", job.id, job.kind, job.target)
    retry = jobs.fail(sessions, job.id, job.worker_id, message, max_attempts=policy.max_attempts,
                      backoff_s=policy.backoff_s, permanent=permanent, error_code=code)
    _event(logging.WARNING if retry else logging.ERROR, "job.retry" if retry else "job.failed",
           code=code, permanent=permanent, error=repr(message[:300]), **fields)


def _install_sigterm(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM sets ``stop`` (only possible from the main thread; elsewhere the owner sets it)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_term(signum: int, _frame: FrameType | None) -> None:
        _event(logging.INFO, "worker.sigterm")
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_term)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore

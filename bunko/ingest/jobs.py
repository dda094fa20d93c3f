"""The durable job queue: rows in the ``jobs`` table, claimed under a lease.

Why the database and not a broker: the document row and its job commit in one transaction
(``enqueue`` runs in the caller's session), so nothing is queued for a row that does not exist and
nothing is lost when a worker dies.

Life of a job::

    queued ──claim──▶ running ──complete──▶ done
       ▲                 │ ──fail (attempts left)──▶ queued, run_after = now + backoff·2^(n-1)
       │                 │ ──fail (last attempt / permanent)──▶ failed (error kept)
       └─lease expired───┘  (a dead worker's job is claimed again; counts as an attempt)

Claiming is atomic on both databases: PostgreSQL uses ``SELECT ... FOR UPDATE SKIP LOCKED``;
SQLite (one writer at a time) a compare-and-set ``UPDATE ... WHERE status/lease/attempts`` still
match what was read. Every claim increments ``attempts``, which doubles as the row's version.
Times are the workers' UTC clocks; keep them in sync (NTP) across machines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Engine, case, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bunko import tracing
from bunko.domain import DocumentStatus, JobStatus
from bunko.errors import Conflict
from bunko.store.db import Document, Job, utcnow

log = logging.getLogger(__name__)

# How many candidates a SQLite claimer tries before concluding that others took them all.
_SQLITE_CAS_TRIES = 8


# A job's kind: one document through the ingest pipeline, one collection's index rebuilt, or a
# vector collection that no collection uses any more dropped.
INGEST, REINDEX, DROP_VECTORS = "ingest", "reindex", "drop_vectors"


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    document_id: str | None  # None for a collection's job
    kind: str
    attempts: int  # including this one
    worker_id: str
    lease_expires_at: datetime
    trace_context: str | None = None  # the traceparent of the request that queued it
    collection_id: str | None = None  # a collection's job (kind reindex)
    vector_collection: str | None = None  # kind drop_vectors

    @property
    def target(self) -> str:
        """What the job works on: the document's id, the collection's, or the vector collection's name."""
        if self.kind == REINDEX and self.collection_id:
            return self.collection_id
        if self.kind == DROP_VECTORS and self.vector_collection:
            return self.vector_collection
        return str(self.document_id)


# The caller's session factory (``Runtime.sessions``, or one the worker makes from its settings):
# the queue uses the same engine and pool as everything else in the process.
Sessions = sessionmaker[Session]


def _engine(sessions: Sessions) -> Engine:
    """The engine behind ``sessions``, for the statements that need a bare connection."""
    bind = sessions.kw["bind"]
    assert isinstance(bind, Engine)
    return bind


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def enqueue(session: Session, document_id: str, kind: str = INGEST) -> Job:
    """Add a job in the caller's transaction (commit it together with the document row)."""
    job = Job(document_id=document_id, kind=kind, status=JobStatus.queued.value, attempts=0,
              run_after=utcnow(), trace_context=tracing.current_traceparent())
    session.add(job)
    session.flush()
    return job


def enqueue_reindex(session: Session, collection_id: str) -> Job:
    """Queue a rebuild of the collection's index, or return the one already queued or running (a
    second request while one waits asks for nothing more: that one rebuilds with the current recipe)."""
    pending = session.scalars(
        select(Job).where(Job.collection_id == collection_id, Job.kind == REINDEX,
                          Job.status.in_([JobStatus.queued.value, JobStatus.running.value]))
        .order_by(Job.id.desc()).limit(1)
    ).first()
    if pending is not None:
        return pending
    job = Job(collection_id=collection_id, kind=REINDEX, status=JobStatus.queued.value, attempts=0,
              run_after=utcnow(), trace_context=tracing.current_traceparent())
    session.add(job)
    session.flush()
    return job


def enqueue_drop_vectors(session: Session, vector_collection: str, *, delay_s: float) -> Job:
    """Queue the drop of a vector collection no collection uses any more (deleted, or rebuilt under
    a new name). ``delay_s``: at least a lease, so that a worker still indexing a document of it
    loses its lease (its job row went with the collection) before the drop, and cannot write the
    collection back after it."""
    job = Job(vector_collection=vector_collection, kind=DROP_VECTORS, status=JobStatus.queued.value,
              attempts=0, run_after=utcnow() + timedelta(seconds=delay_s),
              trace_context=tracing.current_traceparent())
    session.add(job)
    session.flush()
    return job


def requeue(session: Session, document_id: str, kind: str = INGEST) -> Job:
    """Reprocess: reset the document's job to a fresh ``queued`` one with all attempts available.

    Refuses (``Conflict``) while a worker holds a live lease on it: reprocessing under a running
    job would have two runs race on the same chunks.
    """
    now = utcnow()
    job = session.scalars(
        select(Job).where(Job.document_id == document_id, Job.kind == kind)
        .order_by(Job.id.desc()).limit(1).with_for_update()
    ).first()
    if job is None:
        return enqueue(session, document_id, kind)
    expires = _aware(job.lease_expires_at)
    if job.status == JobStatus.running.value and expires is not None and expires > now:
        raise Conflict(f"document {document_id} is being processed right now (job {job.id}); "
                       "reprocess it after this run finishes")
    job.status = JobStatus.queued.value
    job.attempts = 0
    job.run_after = now
    job.last_error = None
    job.lease_owner = None
    job.lease_expires_at = None
    job.trace_context = tracing.current_traceparent()
    session.flush()
    return job


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        (Job.status == JobStatus.queued.value) & (Job.run_after <= now),
        (Job.status == JobStatus.running.value) & (Job.lease_expires_at < now),
    )


def claim(
    sessions: Sessions, worker_id: str, lease_s: float, *, max_attempts: int | None = None
) -> ClaimedJob | None:
    """Take the oldest ready job (or one whose worker died), or None if there is none.

    With ``max_attempts``: a job whose previous worker died on its last attempt (a document that
    kills workers, e.g. by memory) is marked ``failed`` instead of being handed out again forever.
    """
    while True:
        if _engine(sessions).dialect.name == "postgresql":
            job = _claim_skip_locked(sessions, worker_id, lease_s)
        else:
            job = _claim_compare_and_set(sessions, worker_id, lease_s)
        if job is None:
            return None
        if max_attempts is not None and job.attempts > max_attempts:
            _fail_worker_lost(sessions, job, max_attempts)
            continue
        return job


def _claim_skip_locked(sessions: Sessions, worker_id: str, lease_s: float) -> ClaimedJob | None:
    now = utcnow()
    expires = now + timedelta(seconds=lease_s)
    with sessions.begin() as s:
        job = s.scalars(
            select(Job).where(_claimable(now)).order_by(Job.run_after, Job.id).limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if job is None:
            return None
        job.status = JobStatus.running.value
        job.lease_owner = worker_id
        job.lease_expires_at = expires
        job.attempts = job.attempts + 1
        job.updated_at = now
        return ClaimedJob(job.id, job.document_id, job.kind, job.attempts, worker_id, expires, job.trace_context,
                          job.collection_id, job.vector_collection)


def _claim_compare_and_set(sessions: Sessions, worker_id: str, lease_s: float) -> ClaimedJob | None:
    engine = _engine(sessions)
    for _ in range(_SQLITE_CAS_TRIES):
        now = utcnow()
        expires = now + timedelta(seconds=lease_s)
        # The read runs outside a write transaction, so it never holds SQLite's write lock.
        with engine.connect() as conn:
            row = conn.execute(
                select(Job.id, Job.document_id, Job.kind, Job.status, Job.attempts, Job.trace_context,
                       Job.collection_id, Job.vector_collection)
                .where(_claimable(now)).order_by(Job.run_after, Job.id).limit(1)
            ).first()
        if row is None:
            return None
        with engine.begin() as conn:
            result = conn.execute(
                update(Job)
                .where(Job.id == row.id, Job.status == row.status, Job.attempts == row.attempts,
                       _claimable(now))
                .values(status=JobStatus.running.value, lease_owner=worker_id, lease_expires_at=expires,
                        attempts=row.attempts + 1, updated_at=now)
            )
        if result.rowcount == 1:
            return ClaimedJob(row.id, row.document_id, row.kind, row.attempts + 1, worker_id, expires,
                              row.trace_context, row.collection_id, row.vector_collection)
        # Someone else won this one; look again.
    return None


def _fail_worker_lost(sessions: Sessions, job: ClaimedJob, max_attempts: int) -> None:
    what = {REINDEX: "this collection's reindex", DROP_VECTORS: "this drop"}.get(job.kind, "this document")
    message = (f"the worker processing {what} stopped (killed or crashed) on each of "
               f"{max_attempts} attempts; it may exceed the worker's memory or time limits")
    log.error("job.failed job=%s %s=%s reason=worker_lost attempts=%s",
              job.id, job.kind, job.target, max_attempts)
    with sessions.begin() as s:
        result = s.execute(
            update(Job).where(Job.id == job.id, Job.lease_owner == job.worker_id,
                              Job.status == JobStatus.running.value)
            .values(status=JobStatus.failed.value, attempts=max_attempts, last_error=message,
                    lease_owner=None, lease_expires_at=None, updated_at=utcnow())
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            _set_document_failed(s, job.document_id, message, "worker_lost")


def heartbeat(sessions: Sessions, job_id: int, worker_id: str, lease_s: float) -> bool:
    """Extend the lease. False means the lease was lost (another worker has the job): abandon it."""
    now = utcnow()
    with _engine(sessions).begin() as conn:
        result = conn.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == JobStatus.running.value)
            .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
        )
    return result.rowcount == 1


def complete(sessions: Sessions, job_id: int, worker_id: str) -> bool:
    """Mark the job done. False if the lease had been lost (the other holder will finish it)."""
    now = utcnow()
    with _engine(sessions).begin() as conn:
        result = conn.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == JobStatus.running.value)
            .values(status=JobStatus.done.value, lease_owner=None, lease_expires_at=None,
                    last_error=None, updated_at=now)
        )
    return result.rowcount == 1


def release(sessions: Sessions, job_id: int, worker_id: str) -> bool:
    """Give the job back untouched (worker shutting down): queued again at once, attempt not counted."""
    now = utcnow()
    with _engine(sessions).begin() as conn:
        result = conn.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == JobStatus.running.value)
            .values(status=JobStatus.queued.value, lease_owner=None, lease_expires_at=None,
                    run_after=now, attempts=case((Job.attempts > 0, Job.attempts - 1), else_=0),
                    updated_at=now)
        )
    return result.rowcount == 1


def defer(sessions: Sessions, job_id: int, worker_id: str, error: str, *, delay_s: float) -> bool:
    """A dependency is down (a store, the model service): queue the job again after ``delay_s``
    without counting the attempt. An outage, however long, must not turn good documents into failed
    ones; they wait, and the reason is visible on the document."""
    now = utcnow()
    with sessions.begin() as s:
        result = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.lease_owner == worker_id, Job.status == JobStatus.running.value)
            .values(status=JobStatus.queued.value, lease_owner=None, lease_expires_at=None,
                    run_after=now + timedelta(seconds=delay_s), last_error=error,
                    attempts=case((Job.attempts > 0, Job.attempts - 1), else_=0), updated_at=now)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        doc_id = s.scalar(select(Job.document_id).where(Job.id == job_id))
        doc = s.get(Document, doc_id) if doc_id else None
        if doc is not None:
            doc.status = DocumentStatus.pending.value
            doc.stage = "waiting"
            doc.error = f"waiting for a dependency: {error}"[:2000]
        return True


def fail(
    sessions: Sessions,
    job_id: int,
    worker_id: str,
    error: str,
    *,
    max_attempts: int,
    backoff_s: float,
    permanent: bool = False,
    error_code: str = "ingest_failed",
) -> bool:
    """Record a failed attempt. Returns True if the job will be retried.

    A retry waits ``backoff_s * 2**(attempts-1)``; the document goes back to ``pending``. After
    ``max_attempts`` attempts, or at once for a ``permanent`` error (the document itself is bad),
    the job and its document become ``failed`` with the error kept. If the lease was lost meanwhile,
    nothing changes (the new holder owns the job) and False is returned.
    """
    now = utcnow()
    with sessions.begin() as s:
        job = s.scalars(
            select(Job).where(Job.id == job_id, Job.lease_owner == worker_id,
                              Job.status == JobStatus.running.value).with_for_update()
        ).first()
        if job is None:
            log.warning("job.fail_ignored job=%s worker=%s reason=lease_lost", job_id, worker_id)
            return False
        retry = not permanent and job.attempts < max_attempts
        values: dict[str, object] = {"lease_owner": None, "lease_expires_at": None,
                                     "last_error": error, "updated_at": now}
        if retry:
            values["status"] = JobStatus.queued.value
            values["run_after"] = now + timedelta(seconds=backoff_s * 2 ** max(job.attempts - 1, 0))
        else:
            values["status"] = JobStatus.failed.value
        # Compare-and-set on attempts too: on SQLite the SELECT above locks nothing.
        result = s.execute(
            update(Job).where(Job.id == job_id, Job.lease_owner == worker_id,
                              Job.status == JobStatus.running.value, Job.attempts == job.attempts)
            .values(**values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        if retry:
            doc = s.get(Document, job.document_id) if job.document_id else None
            if doc is not None:
                doc.status = DocumentStatus.pending.value
                doc.stage = "retrying"
        else:
            _set_document_failed(s, job.document_id, error, error_code)
        return retry


def _set_document_failed(s: Session, document_id: str | None, error: str, error_code: str) -> None:
    doc = s.get(Document, document_id) if document_id else None
    if doc is not None:
        doc.status = DocumentStatus.failed.value
        doc.error = error
        doc.error_code = error_code


def queue_depth(session: Session) -> int:
    """Jobs waiting for a worker (queued, including those waiting out a backoff)."""
    return int(session.scalar(select(func.count()).select_from(Job)
                              .where(Job.status == JobStatus.queued.value)) or 0)


def queue_counts(session: Session) -> dict[str, int]:
    """Number of jobs per status (for metrics and ``bunko status``)."""
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    counts = {st.value: 0 for st in JobStatus}
    counts.update({status: int(n) for status, n in rows})
    return counts

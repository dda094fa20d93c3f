"""The durable job queue and the worker loop, on SQLite and PostgreSQL, with real processes."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from bunko.errors import Conflict, CorruptPdf, OcrFailed, StoreUnavailable
from bunko.ingest import jobs, worker_health
from bunko.ingest.worker import LeaseLost, WorkerStopping, run_worker
from bunko.ingest.worker_health import Liveness
from bunko.store.db import Collection, Document, Job, session_factory, session_scope, utcnow
from tests.support.procs import settings_env


def _add_documents(db_url, n, *, with_jobs=True):
    ids = []
    with session_scope(db_url) as s:
        coll = Collection(name=f"c{time.monotonic_ns()}", embedding_model="m", embedding_dim=4,
                          vector_collection="v")
        s.add(coll)
        s.flush()
        for i in range(n):
            doc = Document(collection_id=coll.id, title=f"d{i}", filename=f"d{i}.pdf",
                           sha256=f"{i:064d}", size_bytes=1)
            s.add(doc)
            s.flush()
            if with_jobs:
                jobs.enqueue(s, doc.id)
            ids.append(doc.id)
    return ids


def _claim(db_url, worker, **kw):
    job = jobs.claim(session_factory(db_url), worker, lease_s=30, **kw)
    assert job is not None, "expected a claimable job"
    return job


def _job(db_url, document_id):
    with session_scope(db_url) as s:
        job = s.scalars(select(Job).where(Job.document_id == document_id)).one()
        s.expunge(job)
        return job


def _doc(db_url, document_id):
    with session_scope(db_url) as s:
        doc = s.get(Document, document_id)
        s.expunge(doc)
        return doc


def _expire_lease(db_url, job_id):
    with session_scope(db_url) as s:
        s.execute(update(Job).where(Job.id == job_id)
                  .values(lease_expires_at=utcnow() - timedelta(seconds=1)))


def _make_ready(db_url, job_id):
    with session_scope(db_url) as s:
        s.execute(update(Job).where(Job.id == job_id).values(run_after=utcnow() - timedelta(seconds=1)))


def test_enqueue_claim_complete(db_url):
    (doc_id,) = _add_documents(db_url, 1)
    with session_scope(db_url) as s:
        assert jobs.queue_depth(s) == 1
    job = _claim(db_url, "w1")
    assert job is not None and job.document_id == doc_id and job.attempts == 1 and job.kind == "ingest"
    assert jobs.claim(session_factory(db_url), "w2", lease_s=30) is None  # held under a live lease
    with session_scope(db_url) as s:
        assert jobs.queue_depth(s) == 0
        assert jobs.queue_counts(s)["running"] == 1
    assert jobs.heartbeat(session_factory(db_url), job.id, "w1", 30)
    assert not jobs.heartbeat(session_factory(db_url), job.id, "w2", 30)  # not the holder
    assert jobs.complete(session_factory(db_url), job.id, "w1")
    row = _job(db_url, doc_id)
    assert row.status == "done" and row.lease_owner is None
    assert jobs.claim(session_factory(db_url), "w1", lease_s=30) is None


def test_enqueue_rolls_back_with_the_document(db_url):
    with pytest.raises(RuntimeError), session_scope(db_url) as s:
        coll = Collection(name="rb", embedding_model="m", embedding_dim=4, vector_collection="v")
        s.add(coll)
        s.flush()
        doc = Document(collection_id=coll.id, title="t", filename="f", sha256="x", size_bytes=1)
        s.add(doc)
        s.flush()
        jobs.enqueue(s, doc.id)
        raise RuntimeError("upload failed after the row was written")
    with session_scope(db_url) as s:
        assert s.scalar(select(Job.id)) is None


def test_claims_oldest_first(db_url):
    ids = _add_documents(db_url, 3)
    claimed = [_claim(db_url, "w").document_id for _ in range(3)]
    assert claimed == ids


def test_concurrent_thread_claimers_never_share_a_job(db_url):
    n = 40
    _add_documents(db_url, n)
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def worker(name):
        mine = got.setdefault(name, [])
        barrier.wait()
        while (job := jobs.claim(session_factory(db_url), name, lease_s=300)) is not None:
            mine.append(job.id)
            assert jobs.complete(session_factory(db_url), job.id, name)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    all_ids = [j for ids in got.values() for j in ids]
    assert len(all_ids) == n
    assert len(set(all_ids)) == n  # nobody got a job twice
    with session_scope(db_url) as s:
        assert jobs.queue_counts(s)["done"] == n


@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_never_claim_the_same_job(_pg_migrated_url, procs, tmp_path):
    db_url = _pg_migrated_url
    from tests.support.databases import truncate_all

    truncate_all(db_url)
    n = 60
    _add_documents(db_url, n)
    go = tmp_path / "go"
    claimers = [procs.start_python_module("tests.support.claimer", db_url, f"p{i}", str(go))
                for i in range(2)]
    for c in claimers:
        c.wait_for(lambda c=c: "ready" in c.output(), timeout=30, what="claimer ready")
    go.touch()
    for c in claimers:
        assert c.wait(60) == 0, c.output()
    per_proc = [[int(line.split()[1]) for line in c.output().splitlines() if line.startswith("claimed ")]
                for c in claimers]
    all_ids = per_proc[0] + per_proc[1]
    assert len(all_ids) == n and len(set(all_ids)) == n
    assert not set(per_proc[0]) & set(per_proc[1])
    truncate_all(db_url)


def test_expired_lease_is_reclaimed(db_url):
    _add_documents(db_url, 1)
    first = _claim(db_url, "dead-worker")
    _expire_lease(db_url, first.id)
    second = _claim(db_url, "w2")
    assert second is not None and second.id == first.id and second.attempts == 2
    # The dead worker, should it wake up, finds it lost the lease and cannot record anything.
    assert not jobs.heartbeat(session_factory(db_url), first.id, "dead-worker", 30)
    assert not jobs.complete(session_factory(db_url), first.id, "dead-worker")
    assert not jobs.fail(session_factory(db_url), first.id, "dead-worker", "x", max_attempts=3, backoff_s=0)
    assert jobs.complete(session_factory(db_url), second.id, "w2")


def test_fail_backoff_retry_then_failed_with_error_kept(db_url):
    (doc_id,) = _add_documents(db_url, 1)
    backoff = 10.0
    for attempt in (1, 2):
        job = _claim(db_url, "w")
        assert job.attempts == attempt
        before = utcnow()
        assert jobs.fail(session_factory(db_url), job.id, "w", f"boom {attempt}", max_attempts=3, backoff_s=backoff)
        row = _job(db_url, doc_id)
        assert row.status == "queued" and row.last_error == f"boom {attempt}"
        run_after = jobs._aware(row.run_after)
        assert run_after is not None
        delay = (run_after - before).total_seconds()
        assert backoff * 2 ** (attempt - 1) - 1 < delay <= backoff * 2 ** (attempt - 1) + 1
        assert _doc(db_url, doc_id).status == "pending"
        assert jobs.claim(session_factory(db_url), "w", lease_s=30) is None  # still backing off
        _make_ready(db_url, job.id)
    job = _claim(db_url, "w")
    assert job.attempts == 3
    assert not jobs.fail(session_factory(db_url), job.id, "w", "boom 3", max_attempts=3, backoff_s=backoff,
                         error_code="ocr_failed")
    row = _job(db_url, doc_id)
    assert row.status == "failed" and row.last_error == "boom 3"
    doc = _doc(db_url, doc_id)
    assert doc.status == "failed" and doc.error == "boom 3" and doc.error_code == "ocr_failed"
    assert jobs.claim(session_factory(db_url), "w", lease_s=30) is None


def test_permanent_failure_is_not_retried(db_url):
    (doc_id,) = _add_documents(db_url, 1)
    job = _claim(db_url, "w")
    assert not jobs.fail(session_factory(db_url), job.id, "w", "not a PDF", max_attempts=3, backoff_s=0, permanent=True,
                         error_code="not_pdf")
    assert _job(db_url, doc_id).status == "failed"
    assert _doc(db_url, doc_id).error_code == "not_pdf"


def test_requeue_resets_attempts_and_refuses_a_live_job(db_url):
    (doc_id,) = _add_documents(db_url, 1)
    job = _claim(db_url, "w")
    with pytest.raises(Conflict), session_scope(db_url) as s:
        jobs.requeue(s, doc_id)
    jobs.fail(session_factory(db_url), job.id, "w", "bad", max_attempts=1, backoff_s=0)
    assert _job(db_url, doc_id).status == "failed"
    with session_scope(db_url) as s:
        again = jobs.requeue(s, doc_id)
        assert again.id == job.id
    row = _job(db_url, doc_id)
    assert (row.status, row.attempts, row.last_error) == ("queued", 0, None)
    assert _claim(db_url, "w").attempts == 1
    # A document without any job gets a new one.
    (bare,) = _add_documents(db_url, 1, with_jobs=False)
    with session_scope(db_url) as s:
        jobs.requeue(s, bare)
    assert _job(db_url, bare).status == "queued"


def test_job_whose_worker_died_on_every_attempt_is_failed_not_looped(db_url):
    (doc_id,) = _add_documents(db_url, 1)
    for _ in range(3):
        job = _claim(db_url, "w", max_attempts=3)
        assert job is not None
        _expire_lease(db_url, job.id)
    assert jobs.claim(session_factory(db_url), "w", lease_s=30, max_attempts=3) is None
    doc = _doc(db_url, doc_id)
    assert doc.status == "failed" and doc.error_code == "worker_lost"
    assert _job(db_url, doc_id).status == "failed"


# --- worker loop (in-process) --------------------------------------------------------------------


def test_worker_completes_and_classifies_failures(db_url, settings_factory):
    ok, bad_pdf, flaky = _add_documents(db_url, 3)
    settings = settings_factory(database_url=db_url, job_backoff_s=0, job_max_attempts=3)
    calls: dict[str, int] = {}

    def process(document_id, heartbeat):
        calls[document_id] = calls.get(document_id, 0) + 1
        heartbeat()
        if document_id == bad_pdf:
            raise CorruptPdf("the file is not a readable PDF")
        if document_id == flaky and calls[document_id] < 3:
            raise OcrFailed("every OCR engine failed on page 1")

    handled = run_worker(settings, process, drain=True)
    assert handled == 5
    assert calls == {ok: 1, bad_pdf: 1, flaky: 3}  # invalid documents are not retried
    assert _job(db_url, ok).status == "done"
    assert _job(db_url, flaky).status == "done" and _job(db_url, flaky).attempts == 3
    doc = _doc(db_url, bad_pdf)
    assert (doc.status, doc.error_code) == ("failed", "corrupt_pdf")
    assert doc.error == "the file is not a readable PDF"


def test_an_outage_defers_the_job_without_using_up_its_attempts(db_url, settings_factory):
    """A store or the model service down for longer than all the retries together must not turn a
    good document into a failed one: it waits, visibly, and completes when the outage ends."""
    (doc_id,) = _add_documents(db_url, 1)
    settings = settings_factory(database_url=db_url, job_backoff_s=0, job_max_attempts=2)
    outages = 5  # more than job_max_attempts

    def process(document_id, heartbeat):
        nonlocal outages
        if outages:
            outages -= 1
            raise StoreUnavailable("cannot reach S3 at 127.0.0.1:9")

    for _ in range(5):
        assert run_worker(settings, process, drain=True) == 1
        job, doc = _job(db_url, doc_id), _doc(db_url, doc_id)
        assert (job.status, job.attempts) == ("queued", 0)
        assert job.run_after > utcnow()  # backed off, not hot-looping against the outage
        assert (doc.status, doc.stage) == ("pending", "waiting")
        assert "cannot reach S3" in doc.error
        _make_ready(db_url, job.id)
    assert run_worker(settings, process, drain=True) == 1
    assert _job(db_url, doc_id).status == "done"


def test_worker_unknown_error_retries_then_fails_with_message(db_url, settings_factory):
    (doc_id,) = _add_documents(db_url, 1)
    settings = settings_factory(database_url=db_url, job_backoff_s=0, job_max_attempts=2)

    def process(document_id, heartbeat):
        raise ValueError("unexpected thing")

    assert run_worker(settings, process, drain=True) == 2
    doc = _doc(db_url, doc_id)
    assert doc.status == "failed" and doc.error_code == "internal_error"
    assert "ValueError: unexpected thing" in doc.error


def test_background_thread_keeps_lease_during_a_long_step(db_url, settings_factory):
    (doc_id,) = _add_documents(db_url, 1)
    settings = settings_factory(database_url=db_url, job_lease_s=0.6)
    stolen = []

    def process(document_id, heartbeat):
        # No heartbeat call for 2 s (> 3 leases): only the background renewal keeps the job ours.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            stolen.append(jobs.claim(session_factory(db_url), "thief", lease_s=30))
            time.sleep(0.2)

    run_worker(settings, process, once=True)
    assert not any(stolen)
    assert _job(db_url, doc_id).status == "done"


def test_heartbeat_raises_lease_lost_and_nothing_is_recorded(db_url, settings_factory):
    (doc_id,) = _add_documents(db_url, 1)
    settings = settings_factory(database_url=db_url, job_lease_s=30)
    seen = []

    def process(document_id, heartbeat):
        job = _job(db_url, document_id)
        with session_scope(db_url) as s:  # another worker took the job over
            s.execute(update(Job).where(Job.id == job.id).values(lease_owner="other"))
        time.sleep(0.01)
        try:
            with _fast_clock():
                heartbeat()
        except LeaseLost as e:
            seen.append(e)
            raise

    run_worker(settings, process, once=True)
    assert seen
    row = _job(db_url, doc_id)
    assert row.status == "running" and row.lease_owner == "other"  # untouched by the loser


class _fast_clock:
    """Make the heartbeat believe its last renewal is old, so it goes to the database now."""

    def __enter__(self):
        import bunko.ingest.worker as w

        self._orig = w.time.monotonic
        w.time.monotonic = lambda: self._orig() + 3600  # type: ignore[assignment]

    def __exit__(self, *exc):
        import bunko.ingest.worker as w

        w.time.monotonic = self._orig  # type: ignore[assignment]


def test_stop_event_releases_job_without_counting_the_attempt(db_url, settings_factory):
    (doc_id,) = _add_documents(db_url, 1)
    settings = settings_factory(database_url=db_url)
    stop = threading.Event()

    def process(document_id, heartbeat):
        stop.set()
        with pytest.raises(WorkerStopping):
            heartbeat()
        heartbeat()

    run_worker(settings, process, stop=stop)
    row = _job(db_url, doc_id)
    assert (row.status, row.attempts, row.lease_owner) == ("queued", 0, None)


def test_wrapped_worker_stopping_still_releases(db_url, settings_factory):
    (doc_id,) = _add_documents(db_url, 1)
    settings = settings_factory(database_url=db_url)
    stop = threading.Event()

    def process(document_id, heartbeat):
        stop.set()
        try:
            heartbeat()
        except WorkerStopping as e:
            raise OcrFailed("page 3 interrupted") from e

    run_worker(settings, process, stop=stop)
    row = _job(db_url, doc_id)
    assert (row.status, row.attempts) == ("queued", 0)
    assert _doc(db_url, doc_id).status != "failed"


# --- real worker processes -----------------------------------------------------------------------


@pytest.mark.slow
def test_sigkilled_worker_job_is_completed_by_a_second_worker(db_url, settings_factory, procs, tmp_path):
    (doc_id,) = _add_documents(db_url, 1)
    settings = settings_factory(database_url=db_url, job_lease_s=1.0, worker_poll_s=0.1)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**settings_env(settings), "TEST_MARKER_DIR": str(markers), "TEST_SLEEP_S": "30"}
    first = procs.start_python_module("tests.support.sleepy_worker", env=env, name="first")
    first.wait_for(lambda: list(markers.glob(f"started-{doc_id}-*")), timeout=60, what="job start")
    assert _job(db_url, doc_id).lease_owner is not None
    first.kill()

    # Started at once: it polls until the dead worker's lease runs out, then takes the job over.
    second = procs.start_python_module("tests.support.sleepy_worker",
                                       env={**env, "TEST_SLEEP_S": "0.2"}, name="second")
    second.wait_for(lambda: _job(db_url, doc_id).status == "done", timeout=60,
                    what="the second worker to finish the job")
    assert second.terminate(timeout=30) == 0
    assert list(markers.glob(f"done-{doc_id}-{second.pid}"))
    row = _job(db_url, doc_id)
    assert row.status == "done" and row.attempts == 2
    assert not list(markers.glob(f"done-{doc_id}-{first.pid}"))


@pytest.mark.slow
def test_sigterm_releases_the_job_and_exits(db_url, settings_factory, procs, tmp_path):
    (doc_id,) = _add_documents(db_url, 1)
    settings = settings_factory(database_url=db_url, job_lease_s=30, worker_poll_s=0.1)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**settings_env(settings), "TEST_MARKER_DIR": str(markers), "TEST_SLEEP_S": "60"}
    w = procs.start_python_module("tests.support.sleepy_worker", env=env)
    w.wait_for(lambda: list(markers.glob("started-*")), timeout=60, what="job start")
    assert w.terminate(timeout=30) == 0
    row = _job(db_url, doc_id)
    # Given back at once (a 30 s lease need not run out), and the interrupted try is not counted.
    assert (row.status, row.attempts, row.lease_owner) == ("queued", 0, None)
    assert "job.released" in w.output()


# --- the worker's probe server -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.TransportError:
        return None


@pytest.mark.slow
def test_a_worker_process_answers_its_liveness_probe_idle_and_mid_job_and_closes_it_on_exit(
    db_url, settings_factory, procs, tmp_path
):
    port = _free_port()
    settings = settings_factory(database_url=db_url, job_lease_s=1.0, worker_poll_s=0.1, worker_health_port=port)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**settings_env(settings), "TEST_MARKER_DIR": str(markers), "TEST_SLEEP_S": "3"}
    w = procs.start_python_module("tests.support.sleepy_worker", env=env)
    w.wait_for(lambda: (r := _get(port, "/health")) is not None and r.status_code == 200, timeout=60,
               what="the probe server")
    (doc_id,) = _add_documents(db_url, 1)
    w.wait_for(lambda: list(markers.glob(f"started-{doc_id}-*")), timeout=60, what="job start")
    mid_job = _get(port, "/health")
    assert mid_job is not None and (mid_job.status_code, mid_job.json()) == (200, {"status": "ok"})
    metrics = _get(port, "/metrics")
    assert metrics is not None and "process_cpu_seconds_total" in metrics.text
    assert w.terminate(timeout=30) == 0
    assert _get(port, "/health") is None


def test_the_probe_says_stuck_when_no_sign_of_life_came_in_time():
    liveness = Liveness(max_silence_s=0.3)
    server = worker_health.serve(liveness, 0, host="127.0.0.1")
    port = server.server_address[1]
    try:
        ok = _get(port, "/health")
        assert ok is not None and ok.status_code == 200
        time.sleep(0.5)
        stuck = _get(port, "/health")
        assert stuck is not None and stuck.status_code == 503 and stuck.json()["status"] == "stuck"
        liveness.beat()
        again = _get(port, "/health")
        assert again is not None and again.status_code == 200
        missing = _get(port, "/nothing")
        assert missing is not None and missing.status_code == 404
    finally:
        server.shutdown()
        server.server_close()

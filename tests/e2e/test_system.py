"""The whole system as separate processes, driven as users drive it, with faults injected (``make e2e``,
~10 min on 2 cores; not part of ``make test``). The phases are ``tests/e2e/scenario.py``'s, one test
each, in order (pytest runs a module's tests in file order) on one running system: every part
started once, then the platform engineer, the users, bad files, ingestion under worker SIGKILLs,
queries on every edge, store restarts, the model server down, load, the operator killed, and the
final count of every accepted document.

Options: ``make e2e E2E_ARGS="--users 10 --load-seconds 20"`` (``pytest --e2e-args=...``).
"""

from __future__ import annotations

import shlex
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e import corpus
from tests.e2e.scenario import E2E, parse_args, say

pytestmark = pytest.mark.e2e


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    # A CI timeout or Ctrl-C in a wrapper sends SIGTERM: unwind, so the fixture stops every process.
    raise SystemExit(128 + signum)


@pytest.fixture(scope="module")
def system(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = parse_args(shlex.split(request.config.getoption("e2e_args")))
    root = args.root or tmp_path_factory.mktemp("bunko-e2e")
    e2e = E2E(args, root)
    t0 = time.monotonic()
    try:
        say(f"run directory: {root}")
        e2e.pdfs = corpus.make_corpus(root / "pdfs", reports=args.reports, scanned=args.scanned)
        e2e.phase_start()
        yield e2e
    finally:
        e2e.stop()
        e2e.report.wall_s = time.monotonic() - t0
        print(e2e.report.render(), flush=True)
        signal.signal(signal.SIGTERM, previous)


def _figures(e2e: E2E) -> dict[str, int]:
    r = e2e.report
    return {"documents lost": r.documents_lost, "duplicate chunks": r.duplicate_chunks,
            "unexpected 5xx": r.unexpected_5xx, "5xx under load": r.load_5xx}


def run_phase(e2e: E2E, phase: Callable[[], None]) -> None:
    """Run one phase; fail on a check of its own that failed or a must-be-zero figure that grew."""
    checks, figures = len(e2e.report.checks), _figures(e2e)
    t = time.monotonic()
    phase()
    say(f"   ({phase.__name__}: {time.monotonic() - t:.0f} s)")
    failed = [f"{c.name}: {c.detail[:300]}" for c in e2e.report.checks[checks:] if not c.ok]
    grew = {k: v for k, v in _figures(e2e).items() if v > figures[k]}
    assert not failed and not grew, {"failed checks": failed, "must-be-zero figures": grew}


def test_platform_engineer_applies_crds_and_the_operator_reconciles(system: E2E) -> None:
    run_phase(system, system.phase_platform)


def test_admin_creates_users_of_each_role_and_role_limits_hold(system: E2E) -> None:
    run_phase(system, system.phase_users)


def test_invalid_files_are_refused_and_leave_no_row(system: E2E) -> None:
    run_phase(system, system.phase_invalid)


def test_ingestion_survives_workers_killed_at_random_stages(system: E2E) -> None:
    run_phase(system, system.phase_ingest_with_kills)


def test_questions_cite_the_right_page_on_every_edge_and_never_leak(system: E2E) -> None:
    run_phase(system, system.phase_queries)


def test_each_store_restarting_means_503_then_recovery(system: E2E) -> None:
    run_phase(system, system.phase_store_restarts)


def test_model_server_down_queues_uploads_and_refuses_queries_cleanly(system: E2E) -> None:
    run_phase(system, system.phase_serve_down)


def test_concurrent_users_under_load_while_ingesting(system: E2E) -> None:
    run_phase(system, system.phase_load)


def test_operator_killed_while_reconciling_converges(system: E2E) -> None:
    run_phase(system, system.phase_operator_restart)


def test_every_accepted_document_is_complete_with_its_chunks_and_vectors(system: E2E) -> None:
    run_phase(system, system.phase_verify)
    assert not system.report.failed, system.report.render()

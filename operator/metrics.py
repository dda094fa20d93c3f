"""Prometheus metrics of the operator (served by ``bunko operator run --metrics-port``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "bunko_operator_reconciles_total", "Reconciliations by kind and outcome", ["kind", "outcome"]
)
DURATION = Histogram("bunko_operator_reconcile_seconds", "Time spent in one reconciliation", ["kind"])
PLAN_FEASIBLE = Gauge(
    "bunko_operator_pipeline_feasible", "1 when the Pipeline's GPU plan fits, else 0", ["namespace", "name"]
)
PIPELINE_READY = Gauge(
    "bunko_operator_pipeline_ready", "1 when the Pipeline's RayService is ready", ["namespace", "name"]
)
COLLECTION_DOCUMENTS = Gauge(
    "bunko_operator_collection_documents", "Documents in a DocumentCollection", ["namespace", "name"]
)


@contextmanager
def reconciling(kind: str) -> Iterator[None]:
    """Count one reconciliation: ``ok``, or the exception's class name."""
    start = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except BaseException as exc:
        outcome = type(exc).__name__
        raise
    finally:
        RECONCILES.labels(kind, outcome).inc()
        DURATION.labels(kind).observe(time.perf_counter() - start)

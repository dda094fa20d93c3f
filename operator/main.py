"""The operator's kopf module: every handler, plus process settings (peering, Events, storage).

Run it with ``bunko operator run`` (or ``kopf run -A -m bunko.operator.main``). Handlers live in
``pipeline`` and ``collection``; importing them registers them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kopf
from prometheus_client import start_http_server

from bunko.operator import collection, pipeline  # noqa: F401  (registers the handlers)

log = logging.getLogger(__name__)


@dataclass
class Options:
    """What ``bunko operator run`` sets before kopf starts (kopf's CLI leaves the defaults)."""

    metrics_port: int = 0  # 0: no metrics server
    metrics_host: str = "0.0.0.0"
    peering_name: str = "bunko"
    peering_mandatory: bool = False
    priority: int = 0


OPTIONS = Options()
_metrics_started = False


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _metrics_started
    # Our own annotation prefix and finalizer name, instead of kopf's defaults.
    settings.persistence.finalizer = "bunko.dev/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="bunko.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="bunko.dev", key="last-handled-configuration"
    )
    # Leader election: operators in the same peering pause while one with a higher priority runs.
    settings.peering.name = OPTIONS.peering_name
    settings.peering.mandatory = OPTIONS.peering_mandatory
    settings.peering.priority = OPTIONS.priority
    settings.peering.clusterwide = True
    settings.posting.level = logging.INFO  # Events for info, warnings and errors
    settings.execution.max_workers = 8
    settings.batching.error_delays = [1, 5, 15, 30, 60, 120, 300]  # back-off for unexpected errors
    if OPTIONS.metrics_port and not _metrics_started:
        start_http_server(OPTIONS.metrics_port, addr=OPTIONS.metrics_host)
        _metrics_started = True
        log.info("metrics on %s:%d/metrics", OPTIONS.metrics_host, OPTIONS.metrics_port)


@kopf.on.probe(id="handlers")
def handlers_loaded(**_: Any) -> str:
    return "pipelines, documentcollections, rayservices"


@kopf.on.cleanup()
def close_stores(**_: Any) -> None:
    collection.close_runtime()

"""The workers' collection-level jobs, by kind: what the operator queues instead of doing itself.

The operator holds no text analysis, embedding client or vector-store client (its image stays
small, and a rebuild does not run inside a reconcile handler); it queues these, and every worker
runs them beside the documents, under the same lease, retry and back-off rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bunko.ingest import jobs
from bunko.ingest.reindex import make_reindexer
from bunko.ingest.types import Heartbeat
from bunko.ingest.worker import Process

if TYPE_CHECKING:
    from bunko.runtime import Runtime


def collection_handlers(rt: Runtime) -> dict[str, Process]:
    """``run_worker``'s ``handlers``: a collection's reindex, and dropping a vector collection that
    a deleted or rebuilt collection left behind."""

    def drop_vectors(name: str, heartbeat: Heartbeat) -> None:
        rt.vectors.drop(name)  # idempotent: a retry after a drop that did happen finds nothing

    return {jobs.REINDEX: make_reindexer(rt), jobs.DROP_VECTORS: drop_vectors}

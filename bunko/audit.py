"""The audit log: who did what, when, from where. One row per event in ``audit_log``.

Actions used: ``login``, ``login_failed``, ``logout``, ``token_reuse``, ``upload``, ``delete``,
``reprocess``, ``role_change``, ``user_active``, ``user_create``, ``collection_create``, ``query``.
Never put a secret (password, token) into ``detail``.

Security events are written before the call returns. High-volume ones (``query``) may be deferred
(``defer=True``): a background thread writes them in batches, one transaction per batch instead of
one commit per question; reading the log (:func:`list_entries`) or :func:`flush` writes what is
pending first, and at most ``FLUSH_INTERVAL_S`` of deferred rows can be lost if the process dies.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from bunko.store.db import AuditLog, utcnow

if TYPE_CHECKING:
    from bunko.runtime import Runtime

log = logging.getLogger("bunko.audit")

FLUSH_INTERVAL_S = 0.5
MAX_BATCH = 500


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    ip: str


def _row(action: str, actor: str, target: str, detail: dict[str, Any] | None, ip: str) -> AuditLog:
    return AuditLog(actor=actor[:64], action=action[:64], target=target[:255], detail=detail or {},
                    ip=ip[:64], at=utcnow())


def record(
    rt: Runtime, action: str, *, actor: str = "", target: str = "",
    detail: dict[str, Any] | None = None, ip: str = "", defer: bool = False,
) -> None:
    """Write one audit row (its own transaction, or the next batch with ``defer``). A failing
    audit write is logged, not raised: the action it describes has already happened."""
    row = _row(action, actor, target, detail, ip)
    if defer:
        _writer(rt).put(row)
        return
    try:
        with rt.sessions.begin() as s:
            s.add(row)
    except Exception:
        log.exception("audit write failed", extra={"action": action, "actor": actor})


def flush(rt: Runtime) -> None:
    """Write every deferred row now."""
    writer = _writers.get(rt.db_url)
    if writer is not None:
        writer.flush()


class _BatchWriter:
    def __init__(self, rt: Runtime) -> None:
        self.sessions = rt.sessions
        self.queue: queue.Queue[AuditLog] = queue.Queue()
        self.lock = threading.Lock()  # one batch at a time: the thread's or a flush()'s
        self.thread = threading.Thread(target=self._run, name="bunko-audit", daemon=True)
        self.thread.start()

    def put(self, row: AuditLog) -> None:
        self.queue.put(row)

    def _run(self) -> None:
        while True:
            try:
                first = self.queue.get(timeout=FLUSH_INTERVAL_S)
            except queue.Empty:
                continue
            self._write([first])

    def flush(self) -> None:
        self._write([])

    def _write(self, rows: list[AuditLog]) -> None:
        with self.lock:
            while len(rows) < MAX_BATCH:
                try:
                    rows.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            if not rows:
                return
            try:
                with self.sessions.begin() as s:
                    s.add_all(rows)
            except Exception:
                log.exception("audit batch write failed", extra={"rows": len(rows)})


_writers: dict[str, _BatchWriter] = {}
_writers_lock = threading.Lock()


def _writer(rt: Runtime) -> _BatchWriter:
    with _writers_lock:
        writer = _writers.get(rt.db_url)
        if writer is None:
            writer = _writers[rt.db_url] = _BatchWriter(rt)
        return writer


def list_entries(
    rt: Runtime, *, action: str | None = None, actor: str | None = None,
    limit: int = 100, offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """Newest first, with the total count for pagination."""
    flush(rt)
    with rt.sessions() as s:
        q = select(AuditLog)
        count_q = select(func.count()).select_from(AuditLog)
        if action:
            q = q.where(AuditLog.action == action)
            count_q = count_q.where(AuditLog.action == action)
        if actor:
            q = q.where(AuditLog.actor == actor)
            count_q = count_q.where(AuditLog.actor == actor)
        rows = s.scalars(q.order_by(AuditLog.id.desc()).limit(limit).offset(offset)).all()
        total = int(s.scalar(count_q) or 0)
        return [
            AuditEntry(id=r.id, at=r.at, actor=r.actor, action=r.action, target=r.target,
                       detail=dict(r.detail or {}), ip=r.ip)
            for r in rows
        ], total

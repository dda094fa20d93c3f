"""The audit log: who did what, when, from where. One row per event in ``audit_log``.

Actions used: ``login``, ``login_failed``, ``logout``, ``token_reuse``, ``upload``, ``delete``,
``reprocess``, ``role_change``, ``user_create``, ``collection_create``, ``query``.
Never put a secret (password, token) into ``detail``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from bunko.store.db import AuditLog

if TYPE_CHECKING:
    from bunko.runtime import Runtime

log = logging.getLogger("bunko.audit")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    ip: str


def record(
    rt: Runtime, action: str, *, actor: str = "", target: str = "",
    detail: dict[str, Any] | None = None, ip: str = "",
) -> None:
    """Write one audit row in its own transaction. A failing audit write is logged, not raised:
    the action it describes has already happened."""
    try:
        with rt.sessions.begin() as s:
            s.add(AuditLog(actor=actor[:64], action=action[:64], target=target[:255],
                           detail=detail or {}, ip=ip[:64]))
    except Exception:
        log.exception("audit write failed", extra={"action": action, "actor": actor})


def list_entries(
    rt: Runtime, *, action: str | None = None, actor: str | None = None,
    limit: int = 100, offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """Newest first, with the total count for pagination."""
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

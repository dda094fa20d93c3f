"""The audit log (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from bunko import audit
from bunko.api.deps import AuditReader, RuntimeDep
from bunko.api.schemas import AuditList, AuditOut

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=AuditList)
def list_audit(
    _admin: AuditReader, rt: RuntimeDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> AuditList:
    entries, total = audit.list_entries(rt, action=action, actor=actor, limit=limit, offset=offset)
    return AuditList(
        items=[AuditOut(id=e.id, at=e.at, actor=e.actor, action=e.action, target=e.target,
                        detail=e.detail, ip=e.ip) for e in entries],
        total=total, limit=limit, offset=offset)

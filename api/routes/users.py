"""User management (admins only)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from bunko import audit, auth
from bunko.api.deps import RuntimeDep, UserManager, client_ip
from bunko.api.schemas import UserCreate, UserOut, UserPatch
from bunko.errors import Conflict

router = APIRouter(prefix="/api/v1/users", tags=["users"])


def _out(u: auth.UserInfo) -> UserOut:
    return UserOut(id=u.id, username=u.username, email=u.email, name=u.name, role=u.role,
                   active=u.active, created_at=u.created_at)


@router.get("", response_model=list[UserOut])
def list_users(_admin: UserManager, rt: RuntimeDep) -> list[UserOut]:
    return [_out(u) for u in auth.list_users(rt)]


@router.post("", response_model=UserOut, status_code=201)
def create_user(body: UserCreate, admin: UserManager, rt: RuntimeDep, request: Request) -> UserOut:
    user = auth.create_user(rt, body.username, body.password, role=body.role, email=body.email,
                            name=body.name)
    audit.record(rt, "user_create", actor=admin.id, target=user.id,
                 detail={"username": user.username, "role": user.role}, ip=client_ip(request))
    return _out(user)


@router.patch("/{user_id}", response_model=UserOut)
def update_user(user_id: str, body: UserPatch, admin: UserManager, rt: RuntimeDep,
                request: Request) -> UserOut:
    user = auth.get_user(rt, user_id)
    if user.id == admin.id and (body.role not in (None, user.role) or body.active is False):
        raise Conflict("you cannot change your own role or disable yourself; ask another admin "
                       "(this keeps at least one admin able to sign in)")
    if body.role is not None and body.role != user.role:
        before = user.role
        user = auth.set_role(rt, user.id, body.role)
        audit.record(rt, "role_change", actor=admin.id, target=user.id,
                     detail={"from": before, "to": user.role}, ip=client_ip(request))
    if body.active is not None and body.active != user.active:
        user = auth.set_active(rt, user.id, body.active)
        audit.record(rt, "user_active", actor=admin.id, target=user.id,
                     detail={"active": user.active}, ip=client_ip(request))
    return _out(user)

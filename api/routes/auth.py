"""Login, token refresh (rotation with reuse detection), logout, and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool

from bunko import audit, auth
from bunko.api.deps import RuntimeDep, UserDep, anonymous_rate_limit, client_ip
from bunko.api.schemas import LoginRequest, LogoutRequest, MeOut, RefreshRequest, TokenResponse
from bunko.errors import AuthenticationError

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
Limited = Annotated[None, Depends(anonymous_rate_limit)]


def _tokens(pair: auth.TokenPair) -> TokenResponse:
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token,
                         token_type=pair.token_type, expires_in=pair.expires_in)


@router.post("/login", response_model=TokenResponse)
def login(body: LoginRequest, request: Request, rt: RuntimeDep, _: Limited) -> TokenResponse:
    try:
        user, pair = auth.login(rt, body.username, body.password)
    except AuthenticationError:
        audit.record(rt, "login_failed", actor=body.username, ip=client_ip(request))
        raise
    audit.record(rt, "login", actor=user.id, target=user.username, ip=client_ip(request))
    return _tokens(pair)


@router.post("/refresh", response_model=TokenResponse)
def refresh(body: RefreshRequest, request: Request, rt: RuntimeDep, _: Limited) -> TokenResponse:
    try:
        _user, pair = auth.refresh(rt, body.refresh_token)
    except auth.RefreshTokenReused:
        audit.record(rt, "token_reuse", ip=client_ip(request))
        raise
    return _tokens(pair)


@router.post("/logout", status_code=204)
async def logout(user: UserDep, request: Request, rt: RuntimeDep,
                 body: LogoutRequest | None = None) -> None:
    await run_in_threadpool(auth.logout, rt, user.claims, body.refresh_token if body else None)
    await run_in_threadpool(audit.record, rt, "logout", actor=user.id, ip=client_ip(request))


@router.get("/me", response_model=MeOut)
async def me(user: UserDep) -> MeOut:
    c = user.claims
    return MeOut(id=c.sub, name=c.name, email=c.email, role=c.role,
                 permissions=list(c.permissions), expires_at=c.exp)

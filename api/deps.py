"""Dependencies of the routes: the runtime, the current user, one permission check per permission,
and the per-user rate limit.

Every authenticated request passes through :func:`current_user`, which verifies the bearer token
(signature, expiry, revocation) and counts the request against the user's window.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bunko import auth
from bunko.access import Permission, has_permission
from bunko.domain import Principal
from bunko.errors import AuthenticationError, PermissionDenied, RateLimited
from bunko.runtime import Runtime

bearer = HTTPBearer(auto_error=False, description="access token from POST /api/v1/auth/login")


def get_runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.rt
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True)
class CurrentUser:
    claims: auth.AccessClaims

    @property
    def id(self) -> str:
        return self.claims.sub

    @property
    def role(self) -> str:
        return self.claims.role

    @property
    def principal(self) -> Principal:
        return self.claims.principal


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def check_rate_limit(request: Request, rt: Runtime, key: str) -> None:
    """Fixed window of ``app.state.rate_limit_window_s`` seconds (60 by default) holding at most
    ``settings.rate_limit_per_minute`` requests."""
    window = int(request.app.state.rate_limit_window_s)
    limit = rt.settings.rate_limit_per_minute
    count, retry_after = rt.cache.hit_window(key, window)
    if count > limit:
        raise RateLimited(
            f"too many requests: at most {limit} per {window} s; retry in {retry_after} s",
            retry_after=retry_after,
        )


def authenticate_token(request: Request, rt: Runtime, token: str) -> CurrentUser:
    claims = auth.verify_access_token(rt, token)
    request.state.user_id = claims.sub
    request.scope.setdefault("state", {})["user_id"] = claims.sub
    check_rate_limit(request, rt, f"user:{claims.sub}")
    return CurrentUser(claims)


async def current_user(
    request: Request, rt: RuntimeDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> CurrentUser:
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise AuthenticationError("sign in first: send 'Authorization: Bearer <access token>' "
                                  "(POST /api/v1/auth/login gives one)")
    # Revocation and rate-limit checks may talk to Redis: keep them off the event loop.
    return await run_in_threadpool(authenticate_token, request, rt, creds.credentials)


UserDep = Annotated[CurrentUser, Depends(current_user)]


def require(permission: Permission) -> Callable[..., Awaitable[CurrentUser]]:
    """``Depends(require(Permission.x))``: the current user, if their role grants ``x``."""

    async def check(user: UserDep) -> CurrentUser:
        if not has_permission(user.role, permission):
            raise PermissionDenied(
                f"your role ({user.role}) may not do this; it needs the permission "
                f"{permission.value!r}", detail={"role": user.role, "permission": permission.value})
        return user

    check.__name__ = f"require_{permission.name}"
    return check


def anonymous_rate_limit(request: Request, rt: RuntimeDep) -> None:
    """Login and refresh are unauthenticated: they are limited per client address instead."""
    check_rate_limit(request, rt, f"ip:{client_ip(request)}")


Querier = Annotated[CurrentUser, Depends(require(Permission.query))]
Uploader = Annotated[CurrentUser, Depends(require(Permission.documents_upload))]
Lister = Annotated[CurrentUser, Depends(require(Permission.documents_list))]
CollectionReader = Annotated[CurrentUser, Depends(require(Permission.collections_read))]
CollectionManager = Annotated[CurrentUser, Depends(require(Permission.collections_manage))]
UserManager = Annotated[CurrentUser, Depends(require(Permission.users_manage))]
AuditReader = Annotated[CurrentUser, Depends(require(Permission.audit_read))]

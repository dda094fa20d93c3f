"""Users, passwords and tokens.

- Passwords: argon2id (``argon2-cffi``'s defaults), rehashed on login when the parameters change.
- Access token: a JWT (HS256, ``settings.access_token_ttl_s``, 15 min by default) whose claims are
  the seed's: ``sub``, ``name``, ``email``, ``role``, ``permissions``, ``iat``, ``exp``, ``jti``
  (plus ``typ``). Logout revokes its ``jti`` in the cache (Redis, or in-process when embedded) until
  it would have expired anyway.
- Refresh token: a JWT (``typ=refresh``, 7 days) whose ``jti`` is a row of ``refresh_tokens``. Each
  use rotates it: the row is marked used (atomically, so two concurrent uses cannot both win) and a
  new token of the same *family* is issued. Presenting a used or revoked token is reuse — someone
  holds a stolen copy — and revokes the whole family, forcing a new login.
- Signing key: ``settings.jwt_secret``. Production mode refuses to start without one (Settings
  checks); in development a random key is made once and kept in ``data_dir/jwt-secret`` (mode 0600)
  so tokens survive a restart and every process sharing ``data_dir`` agrees.
- Every request acts with the user's *current* rights: verifying an access token reads the user's
  row (role, active) and uses that role, not the one in the token (finding 15.1: a disabled admin's
  old token still created users). A demoted user gets the new role's permissions at once, a
  disabled or deleted one is refused; role changes and deactivation also revoke the refresh
  families. Cost: one primary-key read per request (bench/auth.py: +0.8 ms on embedded SQLite).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import CursorResult, Result, select, update
from sqlalchemy.exc import IntegrityError

from bunko.access import parse_role, permissions_for
from bunko.domain import Principal, Role
from bunko.errors import AuthenticationError, ConfigError, Conflict, InvalidInput, NotFound
from bunko.settings import Settings
from bunko.store.db import RefreshToken, User, utcnow

if TYPE_CHECKING:
    from bunko.runtime import Runtime

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
ISSUER = "bunko"
MIN_PASSWORD_CHARS = 8
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong username costs as much as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))
_key_lock = threading.Lock()


# --- passwords ----------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > 1024:
        raise InvalidInput("a password may have at most 1024 characters")
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# --- signing key --------------------------------------------------------------------------------


def signing_key(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        key = settings.jwt_secret.get_secret_value()
        if len(key) < 32:
            raise ConfigError("BUNKO_JWT_SECRET must be at least 32 characters "
                              "(make one with `openssl rand -hex 32`)")
        return key
    if settings.mode == "production":  # Settings refuses this already; never fall through to a default
        raise ConfigError("BUNKO_JWT_SECRET must be set in production mode")
    path = settings.data_dir / "jwt-secret"
    with _key_lock:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip()


# --- users --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserInfo:
    id: str
    username: str
    email: str
    name: str
    role: str
    active: bool
    created_at: datetime

    @property
    def principal(self) -> Principal:
        return Principal(user_id=self.id, role=self.role)


def _info(u: User) -> UserInfo:
    return UserInfo(id=u.id, username=u.username, email=u.email, name=u.name, role=u.role,
                    active=u.active, created_at=u.created_at)


def create_user(
    rt: Runtime, username: str, password: str, *, role: str = Role.user.value,
    email: str = "", name: str = "",
) -> UserInfo:
    if not USERNAME_RE.match(username):
        raise InvalidInput("a username is 1-64 characters: letters, digits and _ . @ -, "
                           "starting with a letter or digit")
    role_value = _role(role)
    password_hash = hash_password(password)
    try:
        with rt.sessions.begin() as s:
            if s.scalar(select(User.id).where(User.username == username)) is not None:
                raise Conflict(f"user {username!r} already exists")
            user = User(username=username, password_hash=password_hash, role=role_value,
                        email=email[:254], name=(name or username)[:128])
            s.add(user)
            s.flush()
            return _info(user)
    except IntegrityError:
        raise Conflict(f"user {username!r} already exists") from None


def list_users(rt: Runtime) -> list[UserInfo]:
    with rt.sessions() as s:
        return [_info(u) for u in s.scalars(select(User).order_by(User.username))]


def get_user(rt: Runtime, user_id_or_name: str) -> UserInfo:
    with rt.sessions() as s:
        user = s.get(User, user_id_or_name) or s.scalar(
            select(User).where(User.username == user_id_or_name))
        if user is None:
            raise NotFound(f"user {user_id_or_name!r} does not exist")
        return _info(user)


def set_role(rt: Runtime, user_id_or_name: str, role: str) -> UserInfo:
    role_value = _role(role)
    user = get_user(rt, user_id_or_name)
    with rt.sessions.begin() as s:
        row = s.get(User, user.id)
        assert row is not None
        row.role = role_value
        updated = _info(row)
    revoke_user_refresh_tokens(rt, user.id)
    return updated


def set_active(rt: Runtime, user_id_or_name: str, active: bool) -> UserInfo:
    user = get_user(rt, user_id_or_name)
    with rt.sessions.begin() as s:
        row = s.get(User, user.id)
        assert row is not None
        row.active = active
        updated = _info(row)
    if not active:
        revoke_user_refresh_tokens(rt, user.id)
    return updated


def ensure_bootstrap_admin(rt: Runtime) -> UserInfo | None:
    """Create the admin named in settings on first start; leave an existing user untouched."""
    settings = rt.settings
    name, password = settings.bootstrap_admin_username, settings.bootstrap_admin_password
    if not name or password is None:
        return None
    try:
        return get_user(rt, name)
    except NotFound:
        pass
    try:
        user = create_user(rt, name, password.get_secret_value(), role=Role.admin.value)
    except Conflict:  # another replica made it first
        return get_user(rt, name)
    log.info("bootstrap admin created", extra={"username": name})
    return user


def _role(role: str) -> str:
    try:
        return parse_role(role).value
    except Exception:
        raise InvalidInput(f"unknown role {role!r}; roles are {[r.value for r in Role]}") from None


# --- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds until the access token expires
    token_type: str = "bearer"


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    name: str
    email: str
    role: str
    permissions: tuple[str, ...]
    iat: int
    exp: int
    jti: str
    fam: str = ""  # the login session (refresh-token family) this access token belongs to

    @property
    def principal(self) -> Principal:
        return Principal(user_id=self.sub, role=self.role)


def authenticate(rt: Runtime, username: str, password: str) -> UserInfo:
    """Check a username and password; one message for every failure, so it reveals nothing."""
    with rt.sessions() as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is None or not user.active:
            verify_password(_DUMMY_HASH, password)
            raise AuthenticationError("wrong username or password")
        if not verify_password(user.password_hash, password):
            raise AuthenticationError("wrong username or password")
        info = _info(user)
        stale = _hasher.check_needs_rehash(user.password_hash)
    if stale:
        with rt.sessions.begin() as s:
            row = s.get(User, info.id)
            if row is not None:
                row.password_hash = _hasher.hash(password)
    return info


def issue_tokens(rt: Runtime, user: UserInfo, *, family: str | None = None) -> TokenPair:
    settings = rt.settings
    key = signing_key(settings)
    now = datetime.now(UTC)
    iat = int(now.timestamp())
    access_claims: dict[str, Any] = {
        "iss": ISSUER, "typ": "access", "sub": user.id, "name": user.name or user.username,
        "email": user.email, "role": user.role,
        "permissions": sorted(p.value for p in permissions_for(user.role)),
        "iat": iat, "exp": iat + settings.access_token_ttl_s, "jti": uuid.uuid4().hex,
    }
    refresh_jti, fam = uuid.uuid4().hex, family or uuid.uuid4().hex
    access_claims["fam"] = fam  # logout ends the whole session from the access token alone
    refresh_exp = now + timedelta(seconds=settings.refresh_token_ttl_s)
    refresh_claims = {"iss": ISSUER, "typ": "refresh", "sub": user.id, "fam": fam, "iat": iat,
                      "exp": int(refresh_exp.timestamp()), "jti": refresh_jti}
    with rt.sessions.begin() as s:
        s.add(RefreshToken(jti=refresh_jti, user_id=user.id, family=fam, expires_at=refresh_exp))
    return TokenPair(
        access_token=jwt.encode(access_claims, key, algorithm=ALGORITHM),
        refresh_token=jwt.encode(refresh_claims, key, algorithm=ALGORITHM),
        expires_in=settings.access_token_ttl_s,
    )


def login(rt: Runtime, username: str, password: str) -> tuple[UserInfo, TokenPair]:
    user = authenticate(rt, username, password)
    return user, issue_tokens(rt, user)


def _decode(rt: Runtime, token: str, typ: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token, signing_key(rt.settings), algorithms=[ALGORITHM], issuer=ISSUER,
            options={"require": ["exp", "iat", "jti", "sub", "typ"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthenticationError(f"the {typ} token has expired; "
                                  + ("refresh it" if typ == "access" else "log in again")) from None
    except jwt.PyJWTError:
        raise AuthenticationError(f"invalid {typ} token") from None
    if claims.get("typ") != typ:
        raise AuthenticationError(f"this is not an {typ} token" if typ == "access"
                                  else f"this is not a {typ} token")
    return claims


def verify_access_token(rt: Runtime, token: str) -> AccessClaims:
    claims = _decode(rt, token, "access")
    if rt.cache.is_revoked(str(claims["jti"])):
        raise AuthenticationError("this token was revoked (logged out); log in again")
    try:
        sub = str(claims["sub"])
        issued = AccessClaims(
            sub=sub, name=str(claims.get("name", "")),
            email=str(claims.get("email", "")), role=str(claims["role"]),
            permissions=tuple(str(p) for p in claims.get("permissions", [])),
            iat=int(claims["iat"]), exp=int(claims["exp"]), jti=str(claims["jti"]),
            fam=str(claims.get("fam", "")),
        )
    except (KeyError, TypeError, ValueError):
        raise AuthenticationError("invalid access token") from None
    with rt.sessions() as s:
        row = s.execute(select(User.role, User.active).where(User.id == sub)).one_or_none()
    if row is None or not row.active:
        raise AuthenticationError("this account is disabled or no longer exists; ask an administrator")
    if row.role == issued.role:
        return issued
    return replace(issued, role=row.role, permissions=tuple(sorted(p.value for p in permissions_for(row.role))))


class RefreshTokenReused(AuthenticationError):
    code = "refresh_token_reused"


def refresh(rt: Runtime, refresh_token: str) -> tuple[UserInfo, TokenPair]:
    """Rotate a refresh token. A second use of any token of a family revokes the family."""
    claims = _decode(rt, refresh_token, "refresh")
    jti, fam = str(claims["jti"]), str(claims.get("fam", ""))
    now = utcnow()
    with rt.sessions.begin() as s:
        # The conditional UPDATE is the lock: of two concurrent uses exactly one sees rowcount 1.
        won = _rowcount(s.execute(
            update(RefreshToken)
            .where(RefreshToken.jti == jti, RefreshToken.used_at.is_(None),
                   RefreshToken.revoked.is_(False))
            .values(used_at=now)
        ))
        row = s.get(RefreshToken, jti)
        if row is None:
            raise AuthenticationError("unknown refresh token; log in again")
        user = s.get(User, row.user_id)
        if user is None or not user.active:
            raise AuthenticationError("this account is disabled or gone")
        info = _info(user)
    if won != 1:
        revoke_family(rt, row.family)
        raise RefreshTokenReused(
            "this refresh token was already used; every session from that login is now revoked "
            "(log in again)", detail={"family_revoked": True})
    return info, issue_tokens(rt, info, family=fam or row.family)


def _rowcount(result: Result[Any]) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)


def revoke_family(rt: Runtime, family: str) -> int:
    with rt.sessions.begin() as s:
        return _rowcount(s.execute(
            update(RefreshToken).where(RefreshToken.family == family, RefreshToken.revoked.is_(False))
            .values(revoked=True)
        ))


def revoke_user_refresh_tokens(rt: Runtime, user_id: str) -> int:
    with rt.sessions.begin() as s:
        return _rowcount(s.execute(
            update(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.revoked.is_(False))
            .values(revoked=True)
        ))


def logout(rt: Runtime, access: AccessClaims, refresh_token: str | None = None) -> None:
    """End the session: revoke the access token by jti (until it would expire) and its refresh
    family, named in the access token itself (so a client that lost or never sent its refresh
    token still logs out), and the family of ``refresh_token`` too when one is given."""
    ttl = max(1, access.exp - int(datetime.now(UTC).timestamp()) + 1)
    rt.cache.revoke(access.jti, ttl)
    families = {access.fam} if access.fam else set()
    if refresh_token:
        try:
            claims = _decode(rt, refresh_token, "refresh")
        except AuthenticationError:
            claims = None  # an expired or foreign refresh token has nothing left to revoke
        if claims is not None and str(claims["sub"]) == access.sub:
            with rt.sessions() as s:
                row = s.get(RefreshToken, str(claims["jti"]))
                if row is not None:
                    families.add(row.family)
    for family in families:
        with rt.sessions() as s:
            owned = s.scalar(select(RefreshToken.jti).where(RefreshToken.family == family,
                                                            RefreshToken.user_id == access.sub).limit(1))
        if owned is not None:
            revoke_family(rt, family)

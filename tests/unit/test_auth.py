"""bunko.auth against a real (SQLite) database and the in-process cache."""

from __future__ import annotations

import shutil
import stat
import threading
import time

import jwt
import pytest

from bunko import auth
from bunko.errors import AuthenticationError, ConfigError, Conflict, InvalidInput
from bunko.runtime import Runtime


@pytest.fixture
def rt(settings_factory, _sqlite_template, tmp_path):
    db = tmp_path / "auth.db"
    shutil.copyfile(_sqlite_template, db)
    return Runtime(settings_factory(database_url=f"sqlite:///{db}"), migrate_db=False)


@pytest.fixture
def alice(rt):
    return auth.create_user(rt, "alice", "alice-password", role="user", email="a@example.jp")


def test_passwords_are_argon2_and_verify():
    h = auth.hash_password("a-long-password")
    assert h.startswith("$argon2id$")
    assert auth.verify_password(h, "a-long-password")
    assert not auth.verify_password(h, "another-password")
    assert not auth.verify_password("not-a-hash", "a-long-password")
    with pytest.raises(InvalidInput):
        auth.hash_password("short")


def test_development_key_is_made_once_and_private(settings_factory):
    s = settings_factory()
    k1, k2 = auth.signing_key(s), auth.signing_key(s)
    assert k1 == k2 and len(k1) == 64
    mode = stat.S_IMODE((s.data_dir / "jwt-secret").stat().st_mode)
    assert mode == 0o600


def test_production_needs_a_real_secret(settings_factory):
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        settings_factory(mode="production")
    with pytest.raises(ConfigError):
        auth.signing_key(settings_factory(jwt_secret="too-short"))


def test_users_are_unique_and_roles_checked(rt, alice):
    with pytest.raises(Conflict):
        auth.create_user(rt, "alice", "another-password")
    with pytest.raises(InvalidInput):
        auth.create_user(rt, "mallory", "mallory-password", role="root")
    with pytest.raises(InvalidInput):
        auth.create_user(rt, "bad name!", "mallory-password")
    assert [u.username for u in auth.list_users(rt)] == ["alice"]


def test_login_issues_verifiable_tokens(rt, alice):
    _user, pair = auth.login(rt, "alice", "alice-password")
    claims = auth.verify_access_token(rt, pair.access_token)
    assert claims.sub == alice.id and claims.role == "user" and claims.email == "a@example.jp"
    assert "query" in claims.permissions and "users:manage" not in claims.permissions
    with pytest.raises(AuthenticationError):
        auth.login(rt, "alice", "wrong-password")
    with pytest.raises(AuthenticationError):
        auth.login(rt, "nobody", "wrong-password")


def test_expired_tampered_and_wrong_type_tokens_are_refused(rt, alice):
    key = auth.signing_key(rt.settings)
    now = int(time.time())
    expired = jwt.encode({"iss": "bunko", "typ": "access", "sub": alice.id, "role": "admin", "iat": now - 100,
                          "exp": now - 10, "jti": "j1"}, key, algorithm="HS256")
    with pytest.raises(AuthenticationError, match="expired"):
        auth.verify_access_token(rt, expired)
    forged = jwt.encode({"iss": "bunko", "typ": "access", "sub": alice.id, "role": "admin", "iat": now,
                         "exp": now + 60, "jti": "j2"}, "x" * 64, algorithm="HS256")
    with pytest.raises(AuthenticationError, match="invalid"):
        auth.verify_access_token(rt, forged)
    none_alg = jwt.encode({"iss": "bunko", "typ": "access", "sub": alice.id, "role": "admin", "iat": now,
                           "exp": now + 60, "jti": "j3"}, None, algorithm="none")
    with pytest.raises(AuthenticationError):
        auth.verify_access_token(rt, none_alg)
    _, pair = auth.login(rt, "alice", "alice-password")
    with pytest.raises(AuthenticationError):
        auth.verify_access_token(rt, pair.refresh_token)


def test_refresh_rotation_and_reuse(rt, alice):
    _, pair = auth.login(rt, "alice", "alice-password")
    _, pair2 = auth.refresh(rt, pair.refresh_token)
    _, pair3 = auth.refresh(rt, pair2.refresh_token)
    with pytest.raises(auth.RefreshTokenReused):
        auth.refresh(rt, pair2.refresh_token)
    with pytest.raises(AuthenticationError):  # the family is revoked, the newest token included
        auth.refresh(rt, pair3.refresh_token)


def test_concurrent_use_of_one_refresh_token_lets_exactly_one_win(rt, alice):
    _, pair = auth.login(rt, "alice", "alice-password")
    results: list[str] = []
    barrier = threading.Barrier(4)

    def use() -> None:
        barrier.wait()
        try:
            auth.refresh(rt, pair.refresh_token)
            results.append("ok")
        except AuthenticationError:
            results.append("refused")

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "refused", "refused", "refused"]


def test_logout_revokes_access_jti_and_refresh_family(rt, alice):
    _, pair = auth.login(rt, "alice", "alice-password")
    claims = auth.verify_access_token(rt, pair.access_token)
    auth.logout(rt, claims, pair.refresh_token)
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.verify_access_token(rt, pair.access_token)
    with pytest.raises(AuthenticationError):
        auth.refresh(rt, pair.refresh_token)


def test_set_role_and_deactivation_revoke_refresh_tokens(rt, alice):
    _, pair = auth.login(rt, "alice", "alice-password")
    assert auth.set_role(rt, "alice", "viewer").role == "viewer"
    with pytest.raises(AuthenticationError):
        auth.refresh(rt, pair.refresh_token)
    auth.set_active(rt, "alice", False)
    with pytest.raises(AuthenticationError):
        auth.login(rt, "alice", "alice-password")


def test_bootstrap_admin_is_created_once(settings_factory, _sqlite_template, tmp_path):
    db = tmp_path / "boot.db"
    shutil.copyfile(_sqlite_template, db)
    rt = Runtime(settings_factory(database_url=f"sqlite:///{db}", bootstrap_admin_username="root",
                                  bootstrap_admin_password="root-password"), migrate_db=False)
    first = auth.ensure_bootstrap_admin(rt)
    second = auth.ensure_bootstrap_admin(rt)
    assert first is not None and second is not None
    assert first.id == second.id and first.role == "admin"
    assert len(auth.list_users(rt)) == 1

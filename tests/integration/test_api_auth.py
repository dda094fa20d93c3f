"""Login, refresh rotation, reuse detection and logout over HTTP, embedded and on PostgreSQL + Redis."""

from __future__ import annotations

import pytest

from tests.support.api import KINDS, open_api
from tests.support.api_users import PASSWORD


@pytest.fixture(scope="module", params=KINDS)
def api(request, tmp_path_factory):
    with open_api(request, tmp_path_factory, request.param) as harness:
        yield harness


def _login(api, username, password=PASSWORD):
    return api.client.post("/api/v1/auth/login", json={"username": username, "password": password})


def test_login_gives_tokens_with_the_seed_claims(api):
    import jwt

    api.add_user("alice", "power_user")
    r = _login(api, "alice")
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 15 * 60
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert set(claims) >= {"sub", "name", "email", "role", "permissions", "iat", "exp", "jti"}
    assert claims["role"] == "power_user"
    assert "documents:upload" in claims["permissions"] and "users:manage" not in claims["permissions"]
    assert claims["exp"] - claims["iat"] == 15 * 60
    me = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["role"] == "power_user"


def test_wrong_password_and_unknown_user_get_the_same_401_and_are_audited(api):
    api.add_user("bob", "user")
    wrong = _login(api, "bob", "not-the-password")
    unknown = _login(api, "nobody-here", "whatever-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "unauthenticated"
    admin = api.add_user("auditor", "admin")
    rows = api.client.get("/api/v1/audit?action=login_failed", headers=admin.headers).json()["items"]
    assert {r["actor"] for r in rows} >= {"bob", "nobody-here"}
    assert all("password" not in str(r["detail"]) for r in rows)


def test_refresh_rotates_and_reuse_revokes_the_family(api):
    user = api.add_user("carol", "user")
    first = user.refresh_token
    r1 = api.client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert r1.status_code == 200
    second = r1.json()["refresh_token"]
    assert second != first
    assert api.client.get("/api/v1/auth/me",
                          headers={"Authorization": f"Bearer {r1.json()['access_token']}"}).status_code == 200
    # The old token again: reuse. Refused, and the token rotated from it dies too.
    reuse = api.client.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert reuse.status_code == 401
    assert reuse.json()["error"]["code"] == "refresh_token_reused"
    after = api.client.post("/api/v1/auth/refresh", json={"refresh_token": second})
    assert after.status_code == 401
    # A new login starts a new family that works.
    fresh = _login(api, "carol").json()["refresh_token"]
    assert api.client.post("/api/v1/auth/refresh", json={"refresh_token": fresh}).status_code == 200


def test_an_access_token_is_not_a_refresh_token_and_garbage_is_401(api):
    user = api.add_user("dave", "viewer")
    assert api.client.post("/api/v1/auth/refresh",
                           json={"refresh_token": user.access_token}).status_code == 401
    assert api.client.get("/api/v1/auth/me",
                          headers={"Authorization": f"Bearer {user.refresh_token}"}).status_code == 401
    assert api.client.get("/api/v1/auth/me", headers={"Authorization": "Bearer x.y.z"}).status_code == 401
    r = api.client.get("/api/v1/auth/me")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_logout_revokes_the_access_token_and_the_refresh_family(api):
    user = api.add_user("erin", "user")
    r = api.client.post("/api/v1/auth/logout", headers=user.headers,
                        json={"refresh_token": user.refresh_token})
    assert r.status_code == 204
    me = api.client.get("/api/v1/auth/me", headers=user.headers)
    assert me.status_code == 401 and "revoked" in me.json()["error"]["message"]
    assert api.client.post("/api/v1/auth/refresh",
                           json={"refresh_token": user.refresh_token}).status_code == 401


def test_logout_without_the_refresh_token_still_ends_the_session(api):
    """Finding 15.6: logout with no body revoked the access token only, and the old refresh token
    still refreshed. The access token names its session, so logout ends all of it."""
    user = api.add_user("erin2", "user")
    rotated = api.client.post("/api/v1/auth/refresh", json={"refresh_token": user.refresh_token}).json()
    headers = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert api.client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert api.client.post("/api/v1/auth/refresh",
                           json={"refresh_token": rotated["refresh_token"]}).status_code == 401
    # Another session of the same user (another device) is not touched.
    other = _login(api, "erin2").json()
    assert api.client.post("/api/v1/auth/refresh",
                           json={"refresh_token": other["refresh_token"]}).status_code == 200


def test_a_disabled_or_demoted_user_loses_their_rights_at_once(api, tmp_path):
    """Finding 15.1: with the *old* access token, a disabled admin still created an admin user and
    read the audit log, and a demoted power_user still uploaded."""
    from tests.support.api import make_pdf

    root = api.add_user("root15", "admin")
    erin = api.add_user("erin15", "admin")
    r = api.client.patch(f"/api/v1/users/{erin.id}", headers=root.headers, json={"role": "viewer", "active": False})
    assert r.status_code == 200
    backdoor = api.client.post("/api/v1/users", headers=erin.headers,
                               json={"username": "backdoor", "password": "backdoor-password", "role": "admin"})
    assert backdoor.status_code == 401
    assert api.client.get("/api/v1/users", headers=erin.headers).status_code == 401
    assert api.client.get("/api/v1/audit", headers=erin.headers).status_code == 401

    pat = api.add_user("pat15", "power_user")
    assert api.client.patch(f"/api/v1/users/{pat.id}", headers=root.headers,
                            json={"role": "viewer"}).status_code == 200
    pdf = make_pdf(tmp_path / "after-demotion.pdf", "降格のあとのアップロード。")
    up = api.upload(pat, pdf)
    assert up.status_code == 403 and "viewer" in up.json()["error"]["message"]
    assert api.client.get("/api/v1/auth/me", headers=pat.headers).json()["role"] == "viewer"


def test_role_change_by_admin_is_audited_and_forces_a_new_login(api):
    admin = api.add_user("root2", "admin")
    user = api.add_user("frank", "viewer")
    r = api.client.patch(f"/api/v1/users/{user.id}", headers=admin.headers, json={"role": "power_user"})
    assert r.status_code == 200 and r.json()["role"] == "power_user"
    assert api.client.post("/api/v1/auth/refresh",
                           json={"refresh_token": user.refresh_token}).status_code == 401
    relogged = _login(api, "frank").json()["access_token"]
    me = api.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {relogged}"}).json()
    assert me["role"] == "power_user"
    changes = api.client.get("/api/v1/audit?action=role_change", headers=admin.headers).json()["items"]
    assert any(c["target"] == user.id and c["detail"] == {"from": "viewer", "to": "power_user"}
               for c in changes)


def test_an_admin_cannot_demote_or_disable_themselves(api):
    admin = api.add_user("solo-admin", "admin")
    for patch in ({"role": "viewer"}, {"active": False}):
        r = api.client.patch(f"/api/v1/users/{admin.id}", headers=admin.headers, json=patch)
        assert r.status_code == 409 and "another admin" in r.json()["error"]["message"]
    me = api.client.get("/api/v1/auth/me", headers=admin.headers).json()
    assert me["role"] == "admin"


def test_bootstrap_admin_from_settings(request, tmp_path_factory):
    with open_api(request, tmp_path_factory, "embedded", bootstrap_admin_username="boss",
                  bootstrap_admin_password="boss-password-123") as api:
        r = _login(api, "boss", "boss-password-123")
        assert r.status_code == 200
        token = r.json()["access_token"]
        users = api.client.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"}).json()
        assert [u["role"] for u in users if u["username"] == "boss"] == ["admin"]

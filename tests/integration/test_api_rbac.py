"""The role × route matrix: every route, every role, the exact status each role gets.

A "deny" is 403 where the role lacks the permission, and 404 where the role may use the route but
may not see the thing (another user's private document): its existence is not revealed.
"""

from __future__ import annotations

import itertools

import pytest

from tests.support.api import KINDS, make_pdf, open_api, wait_for_status
from tests.support.api_users import ROLES

_counter = itertools.count()


@pytest.fixture(scope="module", params=KINDS)
def world(request, tmp_path_factory):
    with open_api(request, tmp_path_factory, request.param, start_worker=True, worker_poll_s=0.2) as api:
        users = api.add_role_users()
        owner = api.add_user("owner", "user")
        victim = api.add_user("victim", "viewer")
        pdfs = tmp_path_factory.mktemp("rbac-pdfs")

        def upload(user, visibility="collection", wait=True):
            n = next(_counter)
            path = make_pdf(pdfs / f"doc{n}.pdf", f"権限の試験用の文書 その{n}。", f"番号 {n}")
            r = api.upload(user, path, visibility=visibility)
            assert r.status_code == 201, r.text
            doc = r.json()
            if wait:
                assert wait_for_status(api, user, doc["id"])["status"] == "completed"
            return doc["id"]

        api.world = {
            "users": users, "owner": owner, "victim": victim, "upload": upload,
            "shared": upload(users["admin"]),
            "private": upload(users["power_user"], visibility="private"),
            "owner_doc": upload(owner),
            "own": {role: upload(users[role]) for role in ("admin", "power_user", "user")},
        }
        yield api


def _fresh_pdf(api, tmp_path):
    n = next(_counter)
    return make_pdf(tmp_path / f"up{n}.pdf", f"新しい文書 {n} をアップロードします。")


# name: (method, path(world, role, tmp_path) -> (url, kwargs), {role: expected status or set})
ALL = dict.fromkeys(ROLES, 200)
ADMIN_ONLY = {"admin": 200, "power_user": 403, "user": 403, "viewer": 403}
OBJECT = {200, 307}  # a download: streamed from a directory store, or a presigned redirect to S3


def _upload_case(api, role, tmp_path):
    path = _fresh_pdf(api, tmp_path)
    return "/api/v1/collections/default/documents", {
        "files": {"file": (path.name, path.read_bytes(), "application/pdf")}}


def _own_doc(api, role, _tmp):
    return f"/api/v1/documents/{api.world['own'][role]}", {}


def _fresh_owner_doc(api, role, _tmp):
    return f"/api/v1/documents/{api.world['upload'](api.world['owner'], wait=False)}", {}


def _fresh_own_doc(api, role, _tmp):
    return f"/api/v1/documents/{api.world['upload'](api.world['users'][role], wait=False)}", {}


CASES = {
    "me": ("GET", lambda a, r, t: ("/api/v1/auth/me", {}), ALL),
    "users.list": ("GET", lambda a, r, t: ("/api/v1/users", {}), ADMIN_ONLY),
    "users.create": ("POST", lambda a, r, t: ("/api/v1/users", {"json": {
        "username": f"new-{r}-{next(_counter)}", "password": "new-user-password", "role": "viewer"}}),
        {**ADMIN_ONLY, "admin": 201}),
    "users.patch": ("PATCH", lambda a, r, t: (f"/api/v1/users/{a.world['victim'].id}",
                                               {"json": {"role": "viewer"}}), ADMIN_ONLY),
    "collections.list": ("GET", lambda a, r, t: ("/api/v1/collections", {}), ALL),
    "collections.create": ("POST", lambda a, r, t: ("/api/v1/collections", {"json": {
        "name": f"c-{r.replace('_', '-')}-{next(_counter)}"}}), {**ADMIN_ONLY, "admin": 201}),
    "collections.get": ("GET", lambda a, r, t: ("/api/v1/collections/default", {}), ALL),
    "collections.reindex": ("POST", lambda a, r, t: ("/api/v1/collections/default/reindex", {}), ADMIN_ONLY),
    "collections.pii_report": ("GET", lambda a, r, t: ("/api/v1/collections/default/pii", {}), ADMIN_ONLY),
    # "off" is the default's policy already: nothing is re-queued, the world stays as it is.
    "collections.pii_policy": ("PUT", lambda a, r, t: ("/api/v1/collections/default/pii",
                                                       {"json": {"policy": "off"}}), ADMIN_ONLY),
    "documents.upload": ("POST", _upload_case,
                         {"admin": 201, "power_user": 201, "user": 201, "viewer": 403}),
    "documents.list": ("GET", lambda a, r, t: ("/api/v1/collections/default/documents", {}),
                       {"admin": 200, "power_user": 200, "user": 200, "viewer": 403}),
    "documents.get_shared": ("GET", lambda a, r, t: (f"/api/v1/documents/{a.world['shared']}", {}), ALL),
    "documents.get_private": ("GET", lambda a, r, t: (f"/api/v1/documents/{a.world['private']}", {}),
                              {"admin": 200, "power_user": 200, "user": 404, "viewer": 404}),
    "documents.page": ("GET", lambda a, r, t: (f"/api/v1/documents/{a.world['shared']}/pages/1", {}), ALL),
    "documents.page_private": ("GET", lambda a, r, t: (
        f"/api/v1/documents/{a.world['private']}/pages/1", {}),
        {"admin": 200, "power_user": 200, "user": 404, "viewer": 404}),
    "documents.page_image": ("GET", lambda a, r, t: (
        f"/api/v1/documents/{a.world['shared']}/pages/1/image", {}), ALL),
    "documents.page_image_private": ("GET", lambda a, r, t: (
        f"/api/v1/documents/{a.world['private']}/pages/1/image", {}),
        {"admin": 200, "power_user": 200, "user": 404, "viewer": 404}),
    # Images are streamed in every store (the page's CSP refuses another origin), never redirected.
    "documents.thumbnail": ("GET", lambda a, r, t: (f"/api/v1/documents/{a.world['shared']}/thumbnail", {}),
                            ALL),
    "documents.original": ("GET", lambda a, r, t: (f"/api/v1/documents/{a.world['shared']}/original", {}),
                           dict.fromkeys(ROLES, OBJECT)),
    "documents.original_private": ("GET", lambda a, r, t: (
        f"/api/v1/documents/{a.world['private']}/original", {}),
        {"admin": OBJECT, "power_user": OBJECT, "user": 404, "viewer": 404}),
    "documents.reprocess_own": ("POST", lambda a, r, t: (_own_doc(a, r, t)[0] + "/reprocess", {}),
                                {"admin": 202, "power_user": 202, "user": 202}),
    "documents.reprocess_others": ("POST", lambda a, r, t: (
        f"/api/v1/documents/{a.world['owner_doc']}/reprocess", {}),
        {"admin": {202, 409}, "power_user": 403, "user": 403, "viewer": 403}),
    "documents.delete_own": ("DELETE", _fresh_own_doc, {"admin": 204, "power_user": 204, "user": 204}),
    "documents.delete_others": ("DELETE", _fresh_owner_doc,
                                {"admin": 204, "power_user": 403, "user": 403, "viewer": 403}),
    "query": ("POST", lambda a, r, t: ("/api/v1/query", {"json": {"question": "権限の試験"}}), ALL),
    "query.stream": ("POST", lambda a, r, t: ("/api/v1/query/stream", {"json": {"question": "権限の試験"}}),
                     ALL),
    "chat.completions": ("POST", lambda a, r, t: ("/v1/chat/completions", {"json": {
        "model": "default", "messages": [{"role": "user", "content": "権限の試験"}]}}), ALL),
    "models": ("GET", lambda a, r, t: ("/v1/models", {}), ALL),
    "audit": ("GET", lambda a, r, t: ("/api/v1/audit", {}), ADMIN_ONLY),
}
MATRIX = [(case, role) for case, (_m, _p, expected) in CASES.items() for role in ROLES if role in expected]


@pytest.mark.parametrize(("case", "role"), MATRIX, ids=[f"{c}-{r}" for c, r in MATRIX])
def test_role_route_matrix(world, case, role, tmp_path):
    method, make, expected = CASES[case]
    url, kwargs = make(world, role, tmp_path)
    r = world.client.request(method, url, headers=world.world["users"][role].headers,
                             follow_redirects=False, **kwargs)
    allowed = expected[role] if isinstance(expected[role], set) else {expected[role]}
    assert r.status_code in allowed, f"{method} {url} as {role}: {r.status_code} {r.text[:300]}"
    if r.status_code in (403, 404):
        assert set(r.json()["error"]) == {"code", "message", "detail"}


PROTECTED = [
    ("GET", "/api/v1/auth/me"), ("POST", "/api/v1/auth/logout"), ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"), ("PATCH", "/api/v1/users/x"), ("GET", "/api/v1/collections"),
    ("POST", "/api/v1/collections"), ("GET", "/api/v1/collections/default"),
    ("POST", "/api/v1/collections/default/reindex"), ("GET", "/api/v1/collections/default/pii"),
    ("PUT", "/api/v1/collections/default/pii"),
    ("POST", "/api/v1/collections/default/documents"), ("GET", "/api/v1/collections/default/documents"),
    ("GET", "/api/v1/documents/x"), ("DELETE", "/api/v1/documents/x"),
    ("POST", "/api/v1/documents/x/reprocess"), ("GET", "/api/v1/documents/x/pages/1"),
    ("GET", "/api/v1/documents/x/pages/1/image"),
    ("GET", "/api/v1/documents/x/thumbnail"), ("GET", "/api/v1/documents/x/original"),
    ("POST", "/api/v1/query"), ("POST", "/api/v1/query/stream"), ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"), ("GET", "/api/v1/audit"),
]


@pytest.mark.parametrize(("method", "url"), PROTECTED)
def test_every_protected_route_needs_a_token(world, method, url):
    r = world.client.request(method, url, json={} if method in ("POST", "PATCH", "PUT") else None)
    assert r.status_code == 401, f"{method} {url}: {r.status_code} {r.text[:200]}"
    assert r.json()["error"]["code"] == "unauthenticated"


def test_every_api_route_is_in_the_matrix_or_public(world):
    public = {"/health", "/ready", "/metrics", "/api/v1/auth/login", "/api/v1/auth/refresh",
              "/openapi.json"}
    routes = {(m.upper(), path) for path, ops in world.app.openapi()["paths"].items() for m in ops}
    covered = {(m, u.replace("/x/", "/{document_id}/").replace("/x", "/{document_id}")
                .replace("/users/{document_id}", "/users/{user_id}")
                .replace("/collections/default", "/collections/{collection}")
                .replace("/pages/1", "/pages/{page}")) for m, u in PROTECTED}
    missing = {(m, p) for m, p in routes if p not in public} - covered
    assert not missing, f"routes missing from the auth matrix: {sorted(missing)}"


@pytest.mark.parametrize("role", ROLES)
def test_websocket_accepts_every_role_that_may_query(world, role):
    with world.client.websocket_connect("/v1/stream") as ws:
        ws.send_json({"type": "auth", "token": world.world["users"][role].access_token})
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"question": "権限の試験"})
        kinds = []
        while not kinds or kinds[-1] not in ("done", "error"):
            kinds.append(ws.receive_json()["type"])
        assert kinds[-1] == "done"


def test_websocket_refuses_a_missing_token(world):
    with world.client.websocket_connect("/v1/stream") as ws:
        ws.send_json({"question": "権限の試験"})
        assert ws.receive_json()["error"]["code"] == "unauthenticated"

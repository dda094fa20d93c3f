"""100 requests per window per user: request 101 is a 429 with Retry-After, other users are not
affected, and the next window lets the user in again. The window is shortened to 6 s for the test
(``app.state.rate_limit_window_s``; 60 s in production)."""

from __future__ import annotations

import time

import pytest

from tests.support.api import KINDS, open_api

WINDOW_S = 6


@pytest.fixture(params=KINDS)
def api(request, tmp_path_factory):
    with open_api(request, tmp_path_factory, request.param, rate_limit_per_minute=100) as api:
        api.app.state.rate_limit_window_s = WINDOW_S
        yield api


def _start_of_window():
    # Fixed windows: start right after a boundary so 101 requests fall inside one window.
    time.sleep(WINDOW_S - (time.time() % WINDOW_S) + 0.05)


def test_request_101_is_429_and_the_limit_recovers(api):
    alice, bob = api.add_user("alice", "viewer"), api.add_user("bob", "viewer")
    _start_of_window()
    started = time.time()
    statuses = [api.client.get("/api/v1/auth/me", headers=alice.headers).status_code for _ in range(100)]
    assert statuses == [200] * 100
    r = api.client.get("/api/v1/auth/me", headers=alice.headers)
    assert time.time() - started < WINDOW_S - 0.5, "the machine was too slow to stay in one window"
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    retry_after = int(r.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW_S
    # Per user: bob is not limited by alice's requests.
    assert api.client.get("/api/v1/auth/me", headers=bob.headers).status_code == 200
    time.sleep(retry_after + 0.1)
    assert api.client.get("/api/v1/auth/me", headers=alice.headers).status_code == 200


def test_login_is_limited_per_client_address(request, tmp_path_factory):
    """Unauthenticated routes count per client address (argon2 makes 100 logins slow, so the limit
    is 5 here: the harness's own login is the first)."""
    with open_api(request, tmp_path_factory, "embedded", rate_limit_per_minute=5) as api:
        api.add_user("carol", "viewer")
        codes = [api.client.post("/api/v1/auth/login",
                                 json={"username": "carol", "password": "wrong-password"}).status_code
                 for _ in range(5)]
        assert codes == [401, 401, 401, 401, 429]
        carol = api.users["carol"]
        # A signed-in user's own requests count against the user, not the address.
        assert api.client.get("/api/v1/auth/me", headers=carol.headers).status_code == 200

"""A test harness for the API: an app on given settings, a client, and one signed-in user per role.

Used by the project's API tests and benchmarks; it does nothing a real client could not do except
create users directly through ``bunko.auth`` (as ``bunko users create`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

from fastapi.testclient import TestClient

from bunko import auth
from bunko.api.main import create_app
from bunko.runtime import Runtime
from bunko.settings import Settings

ROLES = ("admin", "power_user", "user", "viewer")
PASSWORD = "correct-horse-battery"


@dataclass
class SignedIn:
    id: str
    username: str
    role: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class ApiHarness:
    def __init__(self, settings: Settings, *, start_worker: bool = False) -> None:
        self.settings = settings
        self.app = create_app(settings, start_worker=start_worker)
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.users: dict[str, SignedIn] = {}

    def __enter__(self) -> ApiHarness:
        self.client.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.client.__exit__(exc_type, exc, tb)

    @property
    def rt(self) -> Runtime:
        rt: Runtime = self.app.state.rt
        return rt

    def add_user(self, username: str, role: str, password: str = PASSWORD) -> SignedIn:
        """Create a user and sign in through the real login route."""
        info = auth.create_user(self.rt, username, password, role=role, email=f"{username}@example.jp")
        r = self.client.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        body = r.json()
        user = SignedIn(id=info.id, username=username, role=role, access_token=body["access_token"],
                        refresh_token=body["refresh_token"])
        self.users[username] = user
        return user

    def add_role_users(self, prefix: str = "") -> dict[str, SignedIn]:
        """One user per role, named ``<prefix><role>``; returns them by role."""
        return {role: self.add_user(f"{prefix}{role}", role) for role in ROLES}

    def upload(self, user: SignedIn, path: Any, *, collection: str = "default",
               filename: str | None = None, content_type: str = "application/pdf",
               **form: Any) -> Any:
        from pathlib import Path

        p = Path(path)
        return self.client.post(
            f"/api/v1/collections/{collection}/documents", headers=user.headers,
            files={"file": (filename or p.name, p.read_bytes(), content_type)}, data=form)

"""Shared set-up for the API tests (tests/integration/test_api_*.py).

``open_api(request, tmp_path_factory, kind)`` starts the app on one of two back-end sets:

- ``embedded``: SQLite, in-process cache, a directory object store, Milvus Lite — the default;
- ``cluster``: a fresh PostgreSQL database, the session's Redis DB, a fresh SeaweedFS bucket, in
  production mode with a real signing secret (Milvus Lite stays: no Milvus server exists here).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bunko.settings import Settings
from tests.support.api_users import ApiHarness
from tests.support.databases import create_pg_database, drop_pg_database

KINDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("cluster", id="cluster", marks=[pytest.mark.postgres, pytest.mark.s3]),
]


def make_settings(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, kind: str,
                  **overrides: Any) -> tuple[Settings, str | None]:
    """Settings for ``kind``; returns them and the PostgreSQL database name to drop (or None)."""
    data_dir = tmp_path_factory.mktemp(f"api-{kind}")
    values: dict[str, Any] = {"data_dir": data_dir}
    db_name = None
    if kind == "cluster":
        db_name, url = create_pg_database("bunko_api")
        s3 = request.getfixturevalue("s3_server")
        values.update(database_url=url, cache_url=request.getfixturevalue("redis_url"),
                      mode="production", jwt_secret=secrets.token_hex(32), **s3.settings_overrides())
    values.update(overrides)
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("BUNKO_"):
                mp.delenv(key)
        return Settings(_env_file=None, **values), db_name  # type: ignore[call-arg]


@contextmanager
def open_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, kind: str,
             *, start_worker: bool = False, **overrides: Any) -> Iterator[ApiHarness]:
    settings, db_name = make_settings(request, tmp_path_factory, kind, **overrides)
    try:
        with ApiHarness(settings, start_worker=start_worker) as harness:
            yield harness
    finally:
        if db_name:
            drop_pg_database(db_name, settings.database_url)


def make_pdf(path, *lines: str):
    """A small born-digital PDF with Japanese text; different lines give a different file (and hash)."""
    from bunko.samples import _new_pdf, _paragraph

    pdf = _new_pdf(lines[0] if lines else "文書")
    pdf.add_page()
    for line in lines:
        _paragraph(pdf, line)
    pdf.output(str(path))
    return path


def wait_for_status(api, user, document_id: str, statuses=("completed", "failed"), timeout_s: float = 120):
    import time

    deadline = time.monotonic() + timeout_s
    body = {}
    while time.monotonic() < deadline:
        body = api.client.get(f"/api/v1/documents/{document_id}", headers=user.headers).json()
        if body.get("status") in statuses:
            return body
        time.sleep(0.2)
    raise AssertionError(f"document {document_id} did not reach {statuses} in {timeout_s} s: {body}")

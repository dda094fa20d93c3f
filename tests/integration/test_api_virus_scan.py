"""Uploads through a real clamd (Debian's clamav-daemon, tests/support/clamd.py): an infected file is
refused with a 4xx that names the signature, leaves nothing stored and an audit entry; a clean one
passes; clamd down is a 503 that says so, or, with BUNKO_CLAMD_FAIL_OPEN, an accepted upload that
the log and the audit trail mark unscanned."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from bunko.store.db import Document
from tests.support.api import make_pdf, open_api
from tests.support.clamd import hash_signature, start_clamd

SIGNATURE = "Bunko.Test.Infected-1"
# clamd names a signature outside ClamAV's official databases NAME.UNOFFICIAL.
REPORTED = f"{SIGNATURE}.UNOFFICIAL"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("scan")
    infected = make_pdf(d / "infected.pdf", "感染したファイル")
    clean = make_pdf(d / "clean.pdf", "きれいなファイル")
    return {"infected": infected, "clean": clean}


@pytest.fixture(scope="module")
def clamd(tmp_path_factory, files):
    server = start_clamd(tmp_path_factory.mktemp("clamd"),
                         [hash_signature(files["infected"].read_bytes(), SIGNATURE)])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(request, tmp_path_factory, clamd):
    with open_api(request, tmp_path_factory, "embedded", clamd_url=clamd.url) as api:
        api.add_role_users()
        yield api


def _documents(api) -> int:
    with api.rt.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Document)) or 0)


def _audit(api, action, admin="admin"):
    r = api.client.get("/api/v1/audit", params={"action": action}, headers=api.users[admin].headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_an_infected_upload_is_refused_named_audited_and_not_stored(api, files):
    before = _documents(api)
    r = api.upload(api.users["user"], files["infected"])
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "infected" and SIGNATURE in error["message"]
    assert error["detail"] == {"signature": REPORTED}
    assert _documents(api) == before
    (entry,) = [e for e in _audit(api, "upload_infected") if e["detail"]["filename"] == "infected.pdf"]
    assert entry["actor"] == api.users["user"].id and entry["detail"]["signature"] == REPORTED
    assert not list((api.rt.settings.data_dir / "tmp").glob("*"))


def test_a_clean_upload_passes_the_scan(api, files):
    r = api.upload(api.users["user"], files["clean"])
    assert r.status_code == 201, r.text


def test_clamd_down_refuses_uploads_with_503_unless_fail_open(request, tmp_path_factory, files, caplog):
    from bunko.testing.servers import free_port

    down = f"tcp://127.0.0.1:{free_port()}"  # nothing listens
    with open_api(request, tmp_path_factory, "embedded", clamd_url=down, clamd_timeout_s=5) as closed:
        closed.add_role_users("c-")
        r = closed.upload(closed.users["c-user"], files["clean"])
        assert r.status_code == 503, r.text
        assert "virus scanner" in r.json()["error"]["message"] and "Traceback" not in r.text
        assert _documents(closed) == 0
    with open_api(request, tmp_path_factory, "embedded", clamd_url=down, clamd_timeout_s=5,
                  clamd_fail_open=True) as open_:
        open_.add_role_users("o-")
        with caplog.at_level(logging.WARNING):
            r = open_.upload(open_.users["o-user"], files["clean"])
        assert r.status_code == 201, r.text
        assert any("upload.unscanned" in rec.getMessage() for rec in caplog.records)
        (entry,) = _audit(open_, "upload_unscanned", admin="o-admin")
        assert entry["detail"]["filename"] == "clean.pdf" and "unreachable" in entry["detail"]["reason"]

"""A collection's PII policy across real processes: the api (`bunko serve --no-worker`) and a worker
(`bunko worker`) on PostgreSQL, SeaweedFS, Redis and a Milvus server. Under "redact" nothing a
reader gets — page text, blocks, search snippets, answers, the page picture — holds the personal
information, while the original PDF still does; switching to "flag" processes the document again
and leaves its text whole, with the findings listed for admins only."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest
from PIL import Image

from bunko.samples import PERSONAL_VALUES, make_personal_record
from bunko.testing.servers import free_port
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.polling import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.s3, pytest.mark.slow]
CLI = "from bunko.cli import main; main()"


def _holds_any(text: str) -> list[str]:
    return [v for v in PERSONAL_VALUES if v in text]


def test_redact_and_flag_policies_across_the_api_and_a_worker(tmp_path, s3_server, redis_url, milvus_server):
    db_name, db_url = create_pg_database("bunko_pii")
    password = secrets.token_urlsafe(16)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUNKO_")}
    env.update({
        "BUNKO_MODE": "production", "BUNKO_DATABASE_URL": db_url, "BUNKO_MILVUS_URI": milvus_server,
        "BUNKO_CACHE_URL": redis_url, "BUNKO_JWT_SECRET": secrets.token_hex(32),
        "BUNKO_RATE_LIMIT_PER_MINUTE": "100000",  # the test polls
        "BUNKO_BOOTSTRAP_ADMIN_USERNAME": "admin", "BUNKO_BOOTSTRAP_ADMIN_PASSWORD": password,
        **{f"BUNKO_{k.upper()}": str(v) for k, v in s3_server.settings_overrides().items()},
    })
    procs: list[subprocess.Popen[str]] = []
    logs = []

    def died() -> str | None:
        return next((f"{p.args[3:]} exited with {p.returncode}" for p in procs if p.poll() is not None), None)

    def wait(check: Callable[[], object], timeout: float, what: str) -> object:
        return wait_for(check, timeout=timeout, what=what, died=died)

    try:
        for name, args in (("api", ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)]),
                           ("worker", ["worker"])):
            log = (tmp_path / f"{name}.log").open("w")
            logs.append(log)
            procs.append(subprocess.Popen([sys.executable, "-c", CLI, *args], stdout=log, stderr=subprocess.STDOUT,
                                          text=True, env={**env, "BUNKO_DATA_DIR": str(tmp_path / name)}))
        base = f"http://127.0.0.1:{port}"
        api = httpx.Client(base_url=base, timeout=120, follow_redirects=True)
        wait(lambda: api.get("/health", timeout=2).status_code == 200, 120, "the api")
        token = api.post("/api/v1/auth/login", json={"username": "admin", "password": password}).json()["access_token"]
        admin = {"Authorization": f"Bearer {token}"}
        reader_password = secrets.token_urlsafe(16)
        made = api.post("/api/v1/users", headers=admin,
                        json={"username": "reader", "password": reader_password, "role": "user"})
        assert made.status_code == 201, made.text
        reader = {"Authorization": "Bearer " + api.post(
            "/api/v1/auth/login", json={"username": "reader", "password": reader_password}).json()["access_token"]}

        bad = api.post("/api/v1/collections", headers=admin, json={"name": "staff", "config": {"pii": "mask"}})
        assert bad.status_code == 422 and "pii" in bad.text
        made = api.post("/api/v1/collections", headers=admin, json={"name": "staff", "config": {"pii": "redact"}})
        assert made.status_code == 201, made.text

        pdf = make_personal_record(tmp_path / "contacts.pdf")
        up = api.post("/api/v1/collections/staff/documents", headers=admin,
                      files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")})
        assert up.status_code == 201, up.text
        doc_id = up.json()["id"]

        def completed() -> bool:
            return api.get(f"/api/v1/documents/{doc_id}", headers=admin).json()["status"] == "completed"

        wait(completed, 300, "the document under redact")

        # Page text and blocks: redacted, with the labels in place and the rest of the text kept.
        page = api.get(f"/api/v1/documents/{doc_id}/pages/1", headers=reader).json()
        assert _holds_any(page["markdown"]) == []
        assert "＜電話番号＞" in page["markdown"] and "＜個人番号＞" in page["markdown"]
        assert "123456789012" in page["markdown"]  # the order number is not personal information
        assert _holds_any(" ".join(b["text"] for b in page["blocks"])) == []
        boxes = [b["bbox"] for b in page["blocks"] if b["redacted"]]
        assert len(boxes) >= 6

        # The picture of the page: every redacted block's box is black.
        png = api.get(f"/api/v1/documents/{doc_id}/pages/1/image", headers=reader)
        assert png.status_code == 200
        image = Image.open(io.BytesIO(png.content)).convert("L")
        scale = image.width / page["width_pt"]
        for x0, y0, x1, y1 in boxes:
            crop = image.crop((int(x0 * scale) + 1, int(y0 * scale) + 1, int(x1 * scale) - 1, int(y1 * scale) - 1))
            assert max(crop.getdata()) < 40, (x0, y0, x1, y1)

        # Search and the answer: what was indexed is the redacted text.
        for question in ("山田太郎さんの電話番号は何番ですか", "03-5555-0123", "taro.yamada@example.co.jp"):
            answer = api.post("/api/v1/query", headers=reader, json={"question": question, "collection": "staff"})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert _holds_any(body["answer"]) == []
            assert all(_holds_any(s["snippet"]) == [] for s in body["sources"])

        # The original keeps everything, behind the document's ACL.
        original = api.get(f"/api/v1/documents/{doc_id}/original", headers=admin)
        assert original.status_code == 200 and original.content == pdf.read_bytes()

        # Admins see the findings, kinds and counts only; a reader does not.
        assert api.get("/api/v1/collections/staff/pii", headers=reader).status_code == 403
        report = api.get("/api/v1/collections/staff/pii", headers=admin).json()
        assert report["policy"] == "redact"
        assert {"PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "JP_POSTAL_CODE", "JP_ADDRESS", "JP_MY_NUMBER",
                "CREDIT_CARD"} <= set(report["totals"])
        assert report["totals"]["PHONE_NUMBER"] == 2
        assert [(p["document_id"], p["page"], p["redacted"]) for p in report["pages"]] == [(doc_id, 1, True)]
        assert _holds_any(str(report)) == []

        # Flag: the document is processed again under it; its text is whole, the findings stay listed.
        assert api.put("/api/v1/collections/staff/pii", headers=reader, json={"policy": "flag"}).status_code == 403
        changed = api.put("/api/v1/collections/staff/pii", headers=admin, json={"policy": "flag"})
        assert changed.status_code == 200, changed.text
        assert changed.json() == {"collection": "staff", "previous": "redact", "policy": "flag", "requeued": 1}
        wait(completed, 300, "the document under flag")
        page = api.get(f"/api/v1/documents/{doc_id}/pages/1", headers=reader).json()
        assert "03-5555-0123" in page["markdown"] and not any(b["redacted"] for b in page["blocks"])
        report = api.get("/api/v1/collections/staff/pii", headers=admin).json()
        assert report["policy"] == "flag" and report["totals"]["PHONE_NUMBER"] == 2
        assert [p["redacted"] for p in report["pages"]] == [False]
        assert api.put("/api/v1/collections/staff/pii", headers=admin,
                       json={"policy": "hide"}).status_code == 422
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()
        drop_pg_database(db_name, db_url)

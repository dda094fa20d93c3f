"""A collection's PII policy across real processes: the api (`bunko serve --no-worker`) and a worker
(`bunko worker`) on PostgreSQL, SeaweedFS, Redis and a Milvus server. Under "redact" nothing a
reader gets — page text, blocks, search snippets, answers, the page picture — holds the personal
information, while the original PDF still does; switching to "flag" processes the document again
and leaves its text whole, with the findings listed for admins only."""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import pytest
from PIL import Image

from bunko.samples import PERSONAL_VALUES, make_personal_record
from tests.support.api_worker import Stack, api_and_worker

pytestmark = [pytest.mark.postgres, pytest.mark.s3, pytest.mark.slow]


def _holds_any(text: str) -> list[str]:
    return [v for v in PERSONAL_VALUES if v in text]


def test_redact_and_flag_policies_across_the_api_and_a_worker(tmp_path, s3_server, redis_url, milvus_server):
    with api_and_worker(tmp_path, s3_server, redis_url, milvus_server, db="bunko_pii",
                        extra_env={"BUNKO_RATE_LIMIT_PER_MINUTE": "100000"}) as stack:  # the test polls
        _check_policies(stack, tmp_path)


def _check_policies(stack: Stack, tmp_path: Path) -> None:
    api = stack.client()
    admin = stack.admin_headers(api)
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

    stack.wait(completed, 300, "the document under redact")

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
    stack.wait(completed, 300, "the document under flag")
    page = api.get(f"/api/v1/documents/{doc_id}/pages/1", headers=reader).json()
    assert "03-5555-0123" in page["markdown"] and not any(b["redacted"] for b in page["blocks"])
    report = api.get("/api/v1/collections/staff/pii", headers=admin).json()
    assert report["policy"] == "flag" and report["totals"]["PHONE_NUMBER"] == 2
    assert [p["redacted"] for p in report["pages"]] == [False]
    assert api.put("/api/v1/collections/staff/pii", headers=admin,
                   json={"policy": "hide"}).status_code == 422

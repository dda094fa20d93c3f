"""Each bad upload gets its own 4xx with a body that says why, and leaves no object, no row, no job
and no temp file behind; a good one lands once (the same file again is a 409)."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from bunko.samples import make_born_digital, make_encrypted, make_no_pages
from bunko.store.db import Document, Job
from tests.support.api import KINDS, make_pdf, open_api

MAX_BYTES = 400_000


@pytest.fixture(scope="module", params=KINDS)
def api(request, tmp_path_factory):
    with open_api(request, tmp_path_factory, request.param, max_upload_bytes=MAX_BYTES) as api:
        api.add_role_users()
        yield api


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    png = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(png, "PNG")
    whole = make_born_digital(d / "whole.pdf").read_bytes()
    big = make_pdf(d / "big.pdf", "大きな文書").read_bytes()
    big = big + b"%" + b"0" * (MAX_BYTES + 10 - len(big)) + b"\n"  # a comment after %%EOF: still a PDF
    return {
        # name: (bytes, declared content type, status, error code)
        "png_declared_png": (png.getvalue(), "image/png", 415, "not_pdf"),
        "png_declared_pdf": (png.getvalue(), "application/pdf", 415, "not_pdf"),
        "text": ("これはPDFではありません".encode(), "text/plain", 415, "not_pdf"),
        "corrupt": (whole[:400], "application/pdf", 422, "corrupt_pdf"),
        "encrypted": (make_encrypted(d / "enc.pdf", user_password="secret").read_bytes(),
                      "application/pdf", 422, "encrypted_pdf"),
        "empty_file": (b"", "application/pdf", 422, "empty_pdf"),
        "no_pages": (make_no_pages(d / "nopages.pdf").read_bytes(), "application/pdf", 422, "empty_pdf"),
        "oversized": (big, "application/pdf", 413, "too_large"),
    }


def _footprint(api):
    with api.rt.sessions() as s:
        docs = s.scalar(select(func.count()).select_from(Document))
        jobs = s.scalar(select(func.count()).select_from(Job))
    tmp = api.settings.data_dir / "tmp"
    return {"docs": docs, "jobs": jobs, "raw": sorted(api.rt.objects.list("raw-pdfs/")),
            "tmp": sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []}


@pytest.mark.parametrize("name", ["png_declared_png", "png_declared_pdf", "text", "corrupt", "encrypted",
                                  "empty_file", "no_pages", "oversized"])
def test_bad_upload_is_refused_and_leaves_nothing(api, bad_files, name):
    data, content_type, status, code = bad_files[name]
    before = _footprint(api)
    r = api.client.post("/api/v1/collections/default/documents", headers=api.users["user"].headers,
                        files={"file": (f"{name}.pdf", data, content_type)})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and len(error["message"]) > 10
    assert _footprint(api) == before


def test_oversized_chunked_upload_is_stopped_while_streaming(api):
    """No Content-Length: the running count stops the body, with the same 413."""
    boundary = "bunkoboundary"
    sent = {"bytes": 0}

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.pdf\"\r\n"
               "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n").encode()
        for _ in range(200):  # 200 × 64 KiB = 12.8 MB, far over the limit
            sent["bytes"] += 65536
            yield b"0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    before = _footprint(api)
    r = api.client.post("/api/v1/collections/default/documents", headers={
        **api.users["user"].headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body())
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert _footprint(api) == before


def test_declared_length_over_the_limit_is_refused_before_reading(api):
    r = api.client.post("/api/v1/collections/default/documents",
                        headers={**api.users["user"].headers, "Content-Length": str(50 * 1024 * 1024),
                                 "Content-Type": "multipart/form-data; boundary=x"}, content=b"--x--")
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_good_upload_then_duplicate_is_409_and_leaves_nothing(api, tmp_path):
    pdf = make_pdf(tmp_path / "good.pdf", "重複検出の試験です。").read_bytes()
    user = api.users["power_user"]
    r = api.client.post("/api/v1/collections/default/documents", headers=user.headers,
                        files={"file": ("good.pdf", pdf, "application/pdf")},
                        data={"visibility": "roles", "allowed_roles": ["viewer", "user"], "tags": "a,b",
                              "title": "重複の試験"})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert (doc["status"], doc["visibility"], doc["allowed_roles"], doc["tags"], doc["title"]) == (
        "pending", "roles", ["user", "viewer"], ["a", "b"], "重複の試験")
    assert doc["owner_id"] == user.id
    before = _footprint(api)
    assert len([k for k in before["raw"] if doc["id"] in k]) == 1
    again = api.client.post("/api/v1/collections/default/documents", headers=api.users["admin"].headers,
                            files={"file": ("copy.pdf", pdf, "application/pdf")})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "duplicate"
    assert again.json()["error"]["detail"]["existing_document_id"] == doc["id"]
    assert _footprint(api) == before


def test_a_duplicate_names_only_a_document_the_uploader_may_read(api, tmp_path):
    """Issue 15.3. bob sends the bytes of alice's private PDF: he gets a 201 and a document of his
    own, shaped like any first upload, with nothing of alice's in it. Bytes of a document he may
    read, or of his own copy, are a 409 that names it."""
    alice, bob = api.add_user("dup-alice", "user"), api.add_user("dup-bob", "user")
    pdf = make_pdf(tmp_path / "secret.pdf", "秘密の文書です。", "alice だけが読めます。")
    mine = api.upload(alice, pdf, filename="alice_secret.pdf", visibility="private")
    assert mine.status_code == 201, mine.text
    theirs = api.upload(bob, pdf, filename="guess.pdf")
    assert theirs.status_code == 201, theirs.text
    body = theirs.json()
    assert body["owner_id"] == bob.id and body["id"] != mine.json()["id"]
    assert (body["status"], body["filename"], body["visibility"]) == ("pending", "guess.pdf", "collection")
    assert sorted(body) == sorted(mine.json())
    assert mine.json()["id"] not in theirs.text and "alice" not in theirs.text
    assert api.client.get(f"/api/v1/documents/{mine.json()['id']}", headers=bob.headers).status_code == 404

    again = api.upload(bob, pdf, filename="guess-again.pdf")
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["detail"]["existing_document_id"] == body["id"] and "alice" not in again.text

    shared = make_pdf(tmp_path / "shared.pdf", "皆で読む文書です。")
    assert api.upload(alice, shared).status_code == 201  # visibility "collection": bob may read it
    seen = api.upload(bob, shared, filename="copy.pdf")
    assert seen.status_code == 409 and "shared.pdf" in seen.json()["error"]["message"]


def test_bad_form_fields_are_422_and_leave_nothing(api, tmp_path):
    pdf = make_pdf(tmp_path / "form.pdf", "フォームの試験です。").read_bytes()
    before = _footprint(api)
    for form in ({"visibility": "public"}, {"visibility": "roles"},
                 {"visibility": "roles", "allowed_roles": "root"}, {"tags": ",".join(["t"] * 40)}):
        r = api.client.post("/api/v1/collections/default/documents", headers=api.users["user"].headers,
                            files={"file": ("form.pdf", pdf, "application/pdf")}, data=form)
        assert r.status_code == 422, (form, r.text)
        assert r.json()["error"]["code"] == "invalid_input"
    r = api.client.post("/api/v1/collections/default/documents", headers=api.users["user"].headers,
                        json={"file": "not multipart"})
    assert r.status_code == 422
    r = api.client.post("/api/v1/collections/nope/documents", headers=api.users["user"].headers,
                        files={"file": ("form.pdf", pdf, "application/pdf")})
    assert r.status_code == 404
    assert _footprint(api) == before


def test_delete_removes_object_rows_and_vectors(api, tmp_path):
    pdf = make_pdf(tmp_path / "del.pdf", "削除の試験です。").read_bytes()
    user = api.users["user"]
    before = _footprint(api)
    r = api.client.post("/api/v1/collections/default/documents", headers=user.headers,
                        files={"file": ("del.pdf", pdf, "application/pdf")})
    assert r.status_code == 201
    doc_id = r.json()["id"]
    assert _footprint(api) != before
    # A page image rendered for a reader is removed with the document too.
    assert api.client.get(f"/api/v1/documents/{doc_id}/pages/1/image", headers=user.headers).status_code == 200
    assert api.rt.objects.list(f"thumbnails/pages/{doc_id}/")
    assert api.client.delete(f"/api/v1/documents/{doc_id}", headers=user.headers).status_code == 204
    assert not api.rt.objects.list(f"thumbnails/pages/{doc_id}/")
    assert api.client.get(f"/api/v1/documents/{doc_id}", headers=user.headers).status_code == 404
    assert _footprint(api) == before
    audit = api.client.get("/api/v1/audit", headers=api.users["admin"].headers).json()["items"]
    assert {("upload", doc_id), ("delete", doc_id)} <= {(a["action"], a["target"]) for a in audit}


def test_original_is_streamed_or_a_working_presigned_redirect(api, tmp_path):
    import httpx

    pdf = make_pdf(tmp_path / "orig.pdf", "原本の取得の試験です。").read_bytes()
    user = api.users["user"]
    r = api.client.post("/api/v1/collections/default/documents", headers=user.headers,
                        files={"file": ("原本.pdf", pdf, "application/pdf")})
    doc_id = r.json()["id"]
    got = api.client.get(f"/api/v1/documents/{doc_id}/original", headers=user.headers,
                         follow_redirects=False)
    if api.settings.object_store_url.startswith("s3://"):
        assert got.status_code == 307
        assert httpx.get(got.headers["location"]).content == pdf  # the presigned URL works, unsigned
    else:
        assert got.status_code == 200 and got.content == pdf
        assert got.headers["content-type"] == "application/pdf"
        assert "filename*=UTF-8''%E5%8E%9F%E6%9C%AC.pdf" in got.headers["content-disposition"]
    # No worker runs in this module: the thumbnail does not exist yet, which is a 404 that says so.
    thumb = api.client.get(f"/api/v1/documents/{doc_id}/thumbnail", headers=user.headers)
    assert thumb.status_code == 404 and "status" in thumb.json()["error"]["message"]

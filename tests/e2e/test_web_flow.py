"""The web page in headless Chromium against a running ``bunko serve``: log in, upload (a good PDF
and a PNG renamed .pdf, at once), watch the good one reach ``completed`` and the bad one show its
error next to it, ask in Japanese and watch the answer stream in, follow a citation to its source
card and page; a Viewer gets no upload control and the API refuses its upload; the admin screens.
Screenshots of every screen go to ``tests/e2e/out/screenshots/``."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.conftest import ADMIN_PASSWORD, ADMIN_USER, LAPTOP, PHONE

pytestmark = pytest.mark.slow

QUESTION = "2025年度の売上高はいくらですか？"
INGEST_TIMEOUT_MS = 120_000


def login(page, username: str, password: str) -> None:
    page.goto("/")
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.click("[data-testid=login-submit]")
    expect(page.get_by_test_id("logout")).to_be_visible()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    from bunko.samples import make_born_digital

    out = tmp_path_factory.mktemp("upload")
    good = make_born_digital(out / "決算報告書.pdf")
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "white").save(buf, format="PNG")
    fake = out / "picture.pdf"  # a PNG under a PDF name: the server's magic check must refuse it
    fake.write_bytes(buf.getvalue())
    return {"good": good, "fake": fake}


def expect_page_image_with_boxes(viewer, passage: str) -> None:
    """The page image has loaded (decoded, not a broken <img>) and at least one highlight box over
    it holds part of the cited passage."""
    image = viewer.get_by_test_id("page-image")
    expect(image).to_be_visible()
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") > 100, "the page image did not decode"
    boxes = viewer.get_by_test_id("highlight-box")
    expect(boxes.first).to_be_visible()
    titles = " ".join(b.get_attribute("title") or "" for b in boxes.all())
    assert any(part in titles for part in (passage, passage[:8], passage[-8:])), titles
    # Boxes sit inside the picture of the page, not somewhere else on the screen.
    sheet = viewer.get_by_test_id("page-sheet").bounding_box()
    first = boxes.first.bounding_box()
    assert sheet and first
    assert sheet["x"] - 1 <= first["x"] and first["x"] + first["width"] <= sheet["x"] + sheet["width"] + 1
    assert sheet["y"] - 1 <= first["y"] and first["y"] + first["height"] <= sheet["y"] + sheet["height"] + 1


def test_admin_uploads_asks_and_follows_a_citation(page_factory, bunko_server, files, shot):
    page = page_factory()
    page.goto("/")
    expect(page.get_by_test_id("login-form")).to_be_visible()
    shot(page, "01-login")

    page.fill("#login-username", ADMIN_USER)
    page.fill("#login-password", "wrong-password")
    page.click("[data-testid=login-submit]")
    expect(page.get_by_test_id("login-error")).to_contain_text("認証")

    login(page, ADMIN_USER, ADMIN_PASSWORD)
    expect(page.get_by_test_id("user-role")).to_have_text("管理者")

    # Documents: two files dropped at once, each with its own progress and outcome.
    page.click("[data-testid=nav-documents]")
    expect(page.get_by_test_id("dropzone")).to_be_visible()
    page.set_input_files("[data-testid=upload-input]", [str(files["good"]), str(files["fake"])])
    fake_item = page.locator("[data-testid=upload-item][data-filename='picture.pdf']")
    good_item = page.locator("[data-testid=upload-item][data-filename='決算報告書.pdf']")
    expect(fake_item.get_by_test_id("upload-error")).to_contain_text("PDF ではありません")
    expect(good_item.get_by_test_id("upload-state")).to_contain_text("受け付けました")
    expect(good_item.get_by_test_id("upload-error")).to_be_hidden()

    row = page.locator("[data-testid=doc-row]", has_text="決算報告書.pdf")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", "completed", timeout=INGEST_TIMEOUT_MS)
    expect(row.get_by_test_id("doc-status")).to_have_text("完了")
    expect(page.locator("[data-testid=doc-row]", has_text="picture.pdf")).to_have_count(0)
    shot(page, "02-documents")

    # Ask: the answer must arrive in pieces (SSE through fetch), then carry a working citation.
    page.click("[data-testid=nav-ask]")
    page.fill("[data-testid=ask-question]", QUESTION)
    page.evaluate("""() => {
        const box = document.querySelector('[data-testid=answer]');
        window.__answerLengths = [];
        new MutationObserver(() => window.__answerLengths.push(box.textContent.length))
            .observe(box, {childList: true, characterData: true, subtree: true});
    }""")
    with page.expect_response(re.compile(r"/api/v1/query/stream$")) as resp_info:
        page.press("[data-testid=ask-question]", "Enter")
    response = resp_info.value
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    expect(page.get_by_test_id("ask-status")).to_have_text("回答が完了しました。", timeout=90_000)
    answer = page.get_by_test_id("answer")
    expect(answer).to_contain_text("1,234億円")
    lengths = page.evaluate("window.__answerLengths")
    growing = sorted({n for n in lengths if n > 0})
    assert len(growing) >= 3, f"the answer did not stream in (text lengths seen: {lengths})"
    expect(page.get_by_test_id("answer-meta")).to_contain_text("生成回答")

    cite = answer.get_by_test_id("citation").first
    expect(cite).to_have_text(re.compile(r"\[文書\d+\]"))
    card = page.get_by_test_id("source-card").first
    expect(card.get_by_test_id("source-title")).to_have_text("文庫サンプル 年次報告書")
    expect(card.get_by_test_id("source-page")).to_have_text(re.compile(r"第\d+頁"))
    shot(page, "03-answer")

    cite.click()
    viewer = page.get_by_test_id("source-viewer")
    expect(viewer).to_be_visible()
    expect(viewer).to_contain_text("文庫サンプル 年次報告書")
    expect(viewer).to_contain_text(re.compile(r"第\d+頁"))
    expect(viewer.get_by_test_id("viewer-snippet")).to_contain_text("1,234億円")
    # The cited passage is highlighted: boxes over the rendered page image (the text layer's blocks
    # have boxes too), and marks in the page text.
    expect_page_image_with_boxes(viewer, "1,234億円")
    highlighted = viewer.locator("[data-testid=highlight-box], [data-testid=page-mark]")
    assert "1,234億円" in " ".join(highlighted.all_text_contents() + [
        b.get_attribute("title") or "" for b in viewer.locator("[data-testid=highlight-box]").all()])
    # The citation opened its own card: the active card is the one that carries [文書N].
    active = page.locator("[data-testid=source-card].active")
    expect(active).to_have_count(1)
    expect(active.locator(".cite-badge")).to_contain_text(cite.inner_text())
    shot(page, "04-source-viewer")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()

    assert not page.console_errors, page.console_errors  # CSP violations show up here


def test_a_cited_scanned_page_shows_its_image_with_the_ocr_boxes(page_factory, bunko_server, tmp_path, shot):
    import time

    from bunko.samples import make_scanned

    admin = bunko_server.token(ADMIN_USER, ADMIN_PASSWORD)
    pdf = make_scanned(tmp_path / "スキャン文書.pdf")
    with pdf.open("rb") as fh:
        r = bunko_server.api("POST", "/api/v1/collections/default/documents", admin,
                             files={"file": (pdf.name, fh, "application/pdf")})
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    deadline = time.monotonic() + INGEST_TIMEOUT_MS / 1000
    while (doc := bunko_server.api("GET", f"/api/v1/documents/{doc_id}", admin).json())["status"] not in (
            "completed", "failed"):
        assert time.monotonic() < deadline, f"the scanned PDF was not ingested in time: {doc}"
        time.sleep(0.5)
    assert doc["status"] == "completed", doc
    assert {p["source"] for p in doc["pages"]} != {"layer"}, "precondition: the pages were OCR'd"

    page = page_factory()
    login(page, ADMIN_USER, ADMIN_PASSWORD)
    page.fill("[data-testid=ask-question]", "画像だけの頁の本文はどのように復元しますか？")
    page.press("[data-testid=ask-question]", "Enter")
    expect(page.get_by_test_id("ask-status")).to_have_text("回答が完了しました。", timeout=90_000)
    cite = page.get_by_test_id("answer").get_by_test_id("citation").first
    expect(cite).to_be_visible()
    cite.click()
    viewer = page.get_by_test_id("source-viewer")
    expect(viewer.get_by_test_id("viewer-snippet")).to_contain_text("光学文字認識")
    expect_page_image_with_boxes(viewer, "本文を復元します")
    shot(page, "04b-scanned-page")
    page.keyboard.press("Escape")
    assert not page.console_errors, page.console_errors


def test_viewer_sees_no_upload_and_the_api_refuses_its_upload(page_factory, bunko_server, files, shot):
    admin = bunko_server.token(ADMIN_USER, ADMIN_PASSWORD)
    r = bunko_server.api("POST", "/api/v1/users", admin,
                         json={"username": "yomu", "password": "viewer-password", "role": "viewer",
                               "name": "読む人"})
    assert r.status_code == 201, r.text

    page = page_factory(phone=True)
    login(page, "yomu", "viewer-password")
    expect(page.get_by_test_id("user-role")).to_have_text("閲覧者")
    expect(page.get_by_test_id("ask-form")).to_be_visible()
    expect(page.get_by_test_id("nav-documents")).to_have_count(0)
    page.goto("/#/documents")  # typed by hand: the page falls back to what the role may do
    expect(page.get_by_test_id("ask-form")).to_be_visible()
    expect(page.get_by_test_id("upload-input")).to_have_count(0)
    expect(page.get_by_test_id("dropzone")).to_have_count(0)
    shot(page, "05-viewer-phone")

    viewer = bunko_server.token("yomu", "viewer-password")
    with files["good"].open("rb") as fh:
        r = bunko_server.api("POST", "/api/v1/collections/default/documents", viewer,
                             files={"file": ("決算報告書.pdf", fh, "application/pdf")})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert not page.console_errors, page.console_errors


def test_admin_screens_show_users_collections_status_and_audit(page_factory, bunko_server, shot):
    page = page_factory()
    login(page, ADMIN_USER, ADMIN_PASSWORD)

    page.click("[data-testid=nav-admin-users]")
    expect(page.get_by_test_id("user-row").filter(has_text=ADMIN_USER)).to_have_count(1)
    shot(page, "06-admin-users")

    page.click("[data-testid=nav-admin-collections]")
    expect(page.get_by_test_id("collection-row").filter(has_text="default")).to_be_visible()
    expect(page.get_by_test_id("collection-row").filter(has_text="default").locator(".pii-off")).to_be_visible()
    # A collection whose personal information is redacted, made from the form.
    page.fill("#new-coll-name", "staff-records")
    page.select_option("#new-coll-pii", "redact")
    page.click("[data-testid=collection-create] button[type=submit]")
    expect(page.get_by_test_id("collection-row").filter(has_text="staff-records").locator(".pii-redact")).to_be_visible()
    shot(page, "07-admin-collections")

    page.click("[data-testid=nav-admin-status]")
    expect(page.get_by_test_id("ready-overall")).to_be_visible()
    expect(page.get_by_test_id("documents-by-status")).to_be_visible()
    expect(page.get_by_test_id("latency")).to_be_visible()
    shot(page, "08-admin-status")

    page.click("[data-testid=nav-admin-audit]")
    expect(page.get_by_test_id("audit-row").filter(has_text="login").first).to_be_visible()
    shot(page, "09-admin-audit")

    # A phone: the same screens fit its width (nothing scrolls sideways but the tables' own boxes).
    page.set_viewport_size(PHONE)
    screens = (("#/documents", "11-documents-phone", "[data-testid=docs-rows] tr, [data-testid=docs-empty]"),
               ("#/ask", "12-ask-phone", "[data-testid=ask-form]"))
    for route, name, ready in screens:
        page.goto(f"/{route}")
        expect(page.locator(ready).first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), route
        shot(page, name)
    page.set_viewport_size(LAPTOP)

    page.click("[data-testid=lang-toggle]")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("nav-admin-audit")).to_have_text("Audit log")
    shot(page, "10-admin-audit-en")
    assert not page.console_errors, page.console_errors

"""Questions over HTTP: JSON, SSE, WebSocket and the OpenAI-compatible endpoint, and the ACL: a
private document never reaches another user's answers or sources, whichever way they ask."""

from __future__ import annotations

import json

import pytest

from tests.support.api import KINDS, make_pdf, open_api, wait_for_status

SECRET = "秘密の合言葉はサクラモチです。"
PUBLIC = "文庫の開館時間は午前九時から午後五時までです。"
QUESTIONS = ["合言葉は何ですか", "サクラモチ", "秘密の合言葉を教えてください", "開館時間は何時ですか",
             "合言葉 サクラモチ 秘密"]


@pytest.fixture(scope="module", params=KINDS)
def api(request, tmp_path_factory):
    with open_api(request, tmp_path_factory, request.param, start_worker=True, worker_poll_s=0.2) as api:
        users = api.add_role_users()
        api.add_user("other_power", "power_user")
        pdfs = tmp_path_factory.mktemp("query-pdfs")
        public = api.upload(users["admin"], make_pdf(pdfs / "public.pdf", "開館案内", PUBLIC))
        secret = api.upload(users["power_user"], make_pdf(pdfs / "secret.pdf", "社外秘", SECRET),
                            visibility="private")
        assert public.status_code == secret.status_code == 201, (public.text, secret.text)
        api.public_id, api.secret_id = public.json()["id"], secret.json()["id"]
        for doc_id in (api.public_id, api.secret_id):
            assert wait_for_status(api, users["admin"], doc_id)["status"] == "completed"
        yield api


def _ask(api, user, question, **extra):
    r = api.client.post("/api/v1/query", headers=user.headers,
                        json={"question": question, "collection": "default", **extra})
    assert r.status_code == 200, r.text
    return r.json()


def _sse(api, user, question):
    events = []
    with api.client.stream("POST", "/api/v1/query/stream", headers=user.headers,
                           json={"question": question}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


def _ws(api, user, question):
    events = []
    with api.client.websocket_connect("/v1/stream") as ws:
        ws.send_json({"type": "auth", "token": user.access_token})
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"question": question, "use_cache": False})
        while True:
            event = ws.receive_json()
            events.append(event)
            if event["type"] in ("done", "error"):
                return events


def _openai(api, user):
    from openai import OpenAI

    return OpenAI(base_url="http://testserver/v1", api_key=user.access_token, http_client=api.client,
                  max_retries=0)


def test_owner_and_admin_find_the_private_document(api):
    for who in ("power_user", "admin"):
        answer = _ask(api, api.users[who], "合言葉は何ですか", use_cache=False)
        assert api.secret_id in {s["document_id"] for s in answer["sources"]}, (who, answer)
        assert "サクラモチ" in answer["answer"]


@pytest.mark.parametrize("who", ["user", "viewer", "other_power"])
def test_private_document_never_reaches_other_users(api, who):
    user = api.users[who]
    client = _openai(api, user)
    for question in QUESTIONS:
        answer = _ask(api, user, question, use_cache=False)
        assert api.secret_id not in {s["document_id"] for s in answer["sources"]}
        assert "サクラモチ" not in answer["answer"] + json.dumps(answer["sources"], ensure_ascii=False)
        sse = _sse(api, user, question)
        ws = _ws(api, user, question)
        for stream in (json.dumps(sse, ensure_ascii=False), json.dumps(ws, ensure_ascii=False)):
            assert api.secret_id not in stream and "サクラモチ" not in stream
        completion = client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": question}])
        assert "サクラモチ" not in completion.choices[0].message.content
        assert api.secret_id not in json.dumps(completion.model_extra.get("sources"))
    # The public document is found by the same people: the filter narrows, it does not blind.
    answer = _ask(api, user, "開館時間は何時ですか")
    assert api.public_id in {s["document_id"] for s in answer["sources"]}


def test_sse_streams_tokens_then_sources_then_done(api):
    events = _sse(api, api.users["viewer"], "開館時間は何時ですか")
    kinds = [name for name, _ in events]
    assert kinds[0] == "token" and kinds[-2:] == ["sources", "done"]
    assert set(kinds[:-2]) == {"token"}
    text = "".join(e["text"] for name, e in events if name == "token")
    done = events[-1][1]["answer"]
    assert done["answer"] == text and "午前九時" in text
    assert events[-2][1]["sources"] == done["sources"]
    assert any(s["document_id"] == api.public_id and s["page"] == 1 for s in done["sources"])


def test_websocket_streams_tokens_then_sources_and_rechecks_the_token(api):
    events = _ws(api, api.users["user"], "開館時間は何時ですか")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "token" and kinds[-2:] == ["sources", "done"]
    assert "午前九時" in events[-1]["answer"]["answer"]
    with api.client.websocket_connect("/v1/stream") as ws:
        ws.send_json({"type": "auth", "token": "not-a-token"})
        reply = ws.receive_json()
        assert reply["type"] == "error" and reply["error"]["code"] == "unauthenticated"
    # The Authorization header works too; an invalid question is an error event, not a dropped socket.
    with api.client.websocket_connect("/v1/stream", headers=api.users["viewer"].headers) as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"question": ""})
        assert ws.receive_json()["error"]["code"] == "invalid_input"
        ws.send_json({"question": "開館時間は何時ですか"})
        assert ws.receive_json()["type"] == "token"


def test_a_cited_page_comes_with_its_blocks_image_and_thumbnail(api):
    from io import BytesIO

    from PIL import Image

    user = api.users["viewer"]
    answer = _ask(api, user, "開館時間は何時ですか", use_cache=False)
    source = next(s for s in answer["sources"] if s["document_id"] == api.public_id)
    assert source["refs"] and all(isinstance(n, int) and n >= 1 for n in source["refs"])
    base = f"/api/v1/documents/{api.public_id}"

    page = api.client.get(f"{base}/pages/{source['page']}", headers=user.headers).json()
    width, height = page["width_pt"], page["height_pt"]
    assert width > 0 and height > 0 and page["blocks"], page
    for block in page["blocks"]:
        x0, y0, x1, y1 = block["bbox"]
        assert 0 <= x0 < x1 <= width + 1 and 0 <= y0 < y1 <= height + 1, block
        assert 0 <= block["confidence"] <= 1 and block["kind"]
    assert any("午前九時" in b["text"] for b in page["blocks"])

    # The page image: rendered on first request, then kept in the object store; never a redirect.
    image = api.client.get(f"{base}/pages/{source['page']}/image", headers=user.headers,
                           follow_redirects=False)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    png = Image.open(BytesIO(image.content))
    assert abs(png.width - width * 100 / 72) <= 2 and abs(png.height - height * 100 / 72) <= 2
    assert api.rt.objects.get(f"thumbnails/pages/{api.public_id}/{source['page']}.png") == image.content
    assert api.client.get(f"{base}/pages/{source['page']}/image", headers=user.headers).content == image.content
    assert api.client.get(f"{base}/pages/99/image", headers=user.headers).status_code == 404
    # Another user's private document: its pages are as invisible as the document.
    secret = api.client.get(f"/api/v1/documents/{api.secret_id}/pages/1/image", headers=user.headers)
    assert secret.status_code == 404

    # Thumbnails stream through the api in every store: a redirect to S3's origin would be refused
    # by the page's Content-Security-Policy.
    thumb = api.client.get(f"{base}/thumbnail", headers=user.headers, follow_redirects=False)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    assert Image.open(BytesIO(thumb.content)).size == (200, 300)

    # Timestamps go out with their zone on every database (SQLite stores none).
    doc = api.client.get(base, headers=user.headers).json()
    for field in ("created_at", "updated_at", "completed_at"):
        assert doc[field].endswith(("+00:00", "Z")), (field, doc[field])


def test_openai_client_non_streaming_and_streaming(api):
    client = _openai(api, api.users["viewer"])
    models = [m.id for m in client.models.list()]
    assert "default" in models
    completion = client.chat.completions.create(
        model="default", messages=[{"role": "system", "content": "日本語で"},
                                   {"role": "user", "content": "開館時間は何時ですか"}])
    assert completion.object == "chat.completion"
    assert "午前九時" in completion.choices[0].message.content
    assert any(s["document_id"] == api.public_id for s in completion.model_extra["sources"])
    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "開館時間は何時ですか"}], stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "午前九時" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert any(s["document_id"] == api.public_id for s in chunks[-1].model_extra["sources"])
    from openai import NotFoundError

    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="no-such-collection",
                                       messages=[{"role": "user", "content": "質問"}])


def test_repeat_is_cached_and_an_upload_invalidates(api, tmp_path):
    user = api.users["user"]
    first = _ask(api, user, "開館時間を教えて")
    second = _ask(api, user, "開館時間を教えて")
    assert second["cached"] is True and second["answer"] == first["answer"]
    r = api.upload(api.users["admin"], make_pdf(tmp_path / "new.pdf", "新しい案内", "閉館日は月曜日です。"))
    assert r.status_code == 201
    # The collection's cache generation moves when the new document becomes searchable.
    assert wait_for_status(api, api.users["admin"], r.json()["id"])["status"] == "completed"
    assert _ask(api, user, "開館時間を教えて")["cached"] is False


def test_bad_questions_are_422_in_the_error_shape(api):
    user = api.users["viewer"]
    for body in ({"question": ""}, {"question": "あ" * 501}, {"question": "x", "collection": "UPPER"}):
        r = api.client.post("/api/v1/query", headers=user.headers, json=body)
        assert r.status_code in (404, 422), (body, r.status_code)
        assert set(r.json()["error"]) == {"code", "message", "detail"}
    r = api.client.post("/api/v1/query/stream", headers=user.headers, json={"question": "あ" * 501})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query"

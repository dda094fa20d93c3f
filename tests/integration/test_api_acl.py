"""bunko.access (what the API lets a user open) agrees with the retrieval ACL inside the vector
search (what answers may cite), for every visibility, owner and role combination."""

from __future__ import annotations

import pytest

from bunko.access import can_read_document
from bunko.domain import Principal
from tests.support.api import make_pdf, open_api, wait_for_status

# (owner, visibility, allowed_roles)
DOCS = [
    ("pu", "private", []), ("pu", "collection", []), ("pu", "roles", ["user"]),
    ("pu", "roles", ["viewer"]), ("u", "private", []), ("u", "roles", ["admin"]),
    ("u", "roles", ["power_user", "viewer"]),
]
READERS = {"admin": "admin", "pu": "power_user", "pu2": "power_user", "u": "user", "u2": "user",
           "v": "viewer"}


@pytest.fixture(scope="module")
def api(request, tmp_path_factory):
    with open_api(request, tmp_path_factory, "embedded", start_worker=True, worker_poll_s=0.2) as api:
        for name, role in READERS.items():
            api.add_user(name, role)
        pdfs = tmp_path_factory.mktemp("acl")
        api.docs = []
        for n, (owner, visibility, roles) in enumerate(DOCS):
            path = make_pdf(pdfs / f"d{n}.pdf", f"図書館の蔵書番号は{n}番です。", f"分類 {n}")
            r = api.upload(api.users[owner], path, visibility=visibility, allowed_roles=roles)
            assert r.status_code == 201, r.text
            api.docs.append(r.json())
        for doc in api.docs:
            assert wait_for_status(api, api.users["admin"], doc["id"])["status"] == "completed"
        yield api


@pytest.mark.parametrize("reader", list(READERS))
def test_search_and_document_access_agree(api, reader):
    user = api.users[reader]
    for doc in api.docs:
        expected = can_read_document(Principal(user.id, user.role), type("D", (), doc)())
        answer = api.client.post("/api/v1/query", headers=user.headers, json={
            "question": "蔵書番号は何番ですか", "use_cache": False,
            "filters": {"document_ids": [doc["id"]]}}).json()
        in_answer = any(s["document_id"] == doc["id"] for s in answer["sources"])
        opened = api.client.get(f"/api/v1/documents/{doc['id']}", headers=user.headers).status_code
        assert in_answer == expected, (reader, doc["owner_id"], doc["visibility"], doc["allowed_roles"])
        assert opened == (200 if expected else 404)

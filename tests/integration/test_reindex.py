"""Index versions: a collection built by an older recipe keeps answering, and `bunko reindex`
rebuilds it from the stored pages (no extraction or OCR again) without losing a document."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from bunko import samples as S
from bunko.cli import app
from bunko.collections import collection_config, create_collection, get_collection
from bunko.domain import Principal
from bunko.ingest import pipeline
from bunko.ingest.pipeline import make_processor
from bunko.ingest.reindex import needs_reindex, reindex_collection
from bunko.ingest.submit import submit_document
from bunko.ingest.worker import run_worker
from bunko.qa import ask
from bunko.retrieve.recipe import INDEX_VERSION, LEGACY_INDEX_VERSION

ADMIN = Principal(user_id="admin", role="admin")
QUESTION = "悪意のあるPDFの解析と描画はどこで行いますか？"


@pytest.fixture
def legacy(runtime_factory: Any, tmp_path: Any) -> Any:
    """A runtime with collection "old": built with index version 1, one completed document."""
    rt = runtime_factory()
    # What a collection created by the previous release stores: no index_version at all.
    coll = create_collection(rt, "old", config={"index_version": LEGACY_INDEX_VERSION,
                                                "not_found_bm25_share": None})
    with rt.sessions.begin() as s:
        row = s.merge(coll)
        row.config = {k: v for k, v in row.config.items() if k not in ("index_version", "not_found_bm25_share")}
    pdf = S.make_born_digital(tmp_path / "guide.pdf")
    submit_document(rt, collection="old", path=pdf, filename=pdf.name, owner_id="admin")
    run_worker(rt.settings, make_processor(rt), worker_id="test", drain=True)
    return rt


def _top_page(rt: Any, collection: str) -> int:
    answer = ask(rt, QUESTION, principal=ADMIN, collection=collection, use_cache=False)
    assert answer.mode == "extractive" and answer.sources, answer
    return answer.sources[0].page


def test_a_collection_of_the_previous_release_keeps_answering_with_its_own_analysis(legacy):
    coll = get_collection(legacy, "old")
    assert collection_config(coll).index_version == LEGACY_INDEX_VERSION
    assert needs_reindex(legacy, coll) == [f"index version {LEGACY_INDEX_VERSION} -> {INDEX_VERSION}"]
    assert _top_page(legacy, "old") == 3  # 第3章 安全性への配慮


def test_reindex_rebuilds_from_stored_pages_without_losing_a_document(legacy, monkeypatch):
    before = get_collection(legacy, "old")
    chunks_before = legacy.vectors.count(before.vector_collection)

    def no_extraction(*_a: Any, **_k: Any) -> None:
        raise AssertionError("reindex must not extract or OCR again")

    monkeypatch.setattr(pipeline, "extract_document", no_extraction)
    report = reindex_collection(legacy, "old")
    assert (report.from_version, report.to_version, report.documents) == (LEGACY_INDEX_VERSION, INDEX_VERSION, 1)

    after = get_collection(legacy, "old")
    assert collection_config(after).index_version == INDEX_VERSION
    assert after.vector_collection != before.vector_collection
    assert not legacy.vectors.has(before.vector_collection)
    assert legacy.vectors.count(after.vector_collection) == report.chunks > 0
    assert chunks_before > 0
    assert _top_page(legacy, "old") == 3
    assert needs_reindex(legacy, after) == []
    assert reindex_collection(legacy, "old").documents == 0  # current: nothing to do


def test_bunko_reindex_cli_rebuilds_stale_collections_and_leaves_current_ones(legacy, monkeypatch):
    monkeypatch.setenv("BUNKO_DATA_DIR", str(legacy.settings.data_dir))
    result = CliRunner().invoke(app, ["reindex"])
    assert result.exit_code == 0, result.output
    assert "old: 1 document(s)" in result.output and f"-> {INDEX_VERSION}" in result.output
    again = CliRunner().invoke(app, ["reindex", "old"])
    assert again.exit_code == 0 and "index is current" in again.output


def test_a_document_deleted_during_the_rebuild_does_not_come_back(legacy):
    from bunko.ingest.submit import delete_document
    from bunko.store.db import Document

    with legacy.sessions() as s:
        (doc_id,) = [d.id for d in s.query(Document).all()]

    def delete_it(done: int, left: int) -> None:  # called once the document is in the new index
        delete_document(legacy, doc_id)

    report = reindex_collection(legacy, "old", progress=delete_it)
    after = get_collection(legacy, "old")
    assert legacy.vectors.count(after.vector_collection, doc_id) == 0
    assert report.documents == 0


def test_a_queued_reindex_job_is_run_by_a_worker(legacy, monkeypatch):
    """What the operator's annotation does: a collection-level job that a worker claims and runs
    under the same queue as the documents; asking again while it waits queues nothing more."""
    from bunko.ingest import jobs
    from bunko.ingest.collection_jobs import collection_handlers
    from bunko.store.db import Job

    monkeypatch.setattr(pipeline, "extract_document", lambda *_a, **_k: pytest.fail("extracted again"))
    before = get_collection(legacy, "old")
    with legacy.sessions.begin() as s:
        first = jobs.enqueue_reindex(s, before.id).id
    with legacy.sessions.begin() as s:
        assert jobs.enqueue_reindex(s, before.id).id == first
    handled = run_worker(legacy.settings, make_processor(legacy), handlers=collection_handlers(legacy),
                         worker_id="test", drain=True, sessions=legacy.sessions)
    assert handled == 1
    with legacy.sessions() as s:
        job = s.get(Job, first)
        assert (job.status, job.kind, job.document_id) == ("done", "reindex", None)
    after = get_collection(legacy, "old")
    assert collection_config(after).index_version == INDEX_VERSION
    assert after.vector_collection != before.vector_collection
    assert legacy.vectors.count(after.vector_collection) > 0
    assert _top_page(legacy, "old") == 3
    with legacy.sessions.begin() as s:  # done: a new request is a new job
        assert jobs.enqueue_reindex(s, before.id).id != first


def test_a_worker_without_a_reindexer_fails_the_job_and_says_why(legacy):
    from bunko.ingest import jobs
    from bunko.store.db import Job

    coll = get_collection(legacy, "old")
    with legacy.sessions.begin() as s:
        job_id = jobs.enqueue_reindex(s, coll.id).id
    run_worker(legacy.settings, make_processor(legacy), worker_id="test", drain=True, sessions=legacy.sessions)
    with legacy.sessions() as s:
        job = s.get(Job, job_id)
        assert job.status == "failed" and "runs no reindex jobs" in (job.last_error or "")
    assert collection_config(get_collection(legacy, "old")).index_version == LEGACY_INDEX_VERSION

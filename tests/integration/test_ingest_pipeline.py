"""The whole ingestion pipeline on real stores: SQLite + directory store, and PostgreSQL + SeaweedFS
S3, both with Milvus Lite. Documents go in through ``submit_document`` and come out through the
worker loop exactly as the CLI and the API drive them."""

from __future__ import annotations

import difflib
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bunko import samples as S
from bunko.collections import create_collection
from bunko.errors import (
    CorruptPdf,
    DocumentTooLarge,
    DuplicateDocument,
    EmptyPdf,
    EncryptedPdf,
    InvalidInput,
    NotAPdf,
)
from bunko.ingest.pipeline import make_processor
from bunko.ingest.submit import submit_document
from bunko.ingest.worker import run_worker
from bunko.store.db import Chunk, Document, Job, Page

BACKENDS = [
    pytest.param("sqlite-dir", id="sqlite-dir"),
    pytest.param("postgres-s3", id="postgres-s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
]


@pytest.fixture(params=BACKENDS)
def rt(request: pytest.FixtureRequest, runtime_factory: Any, tmp_path: Path) -> Any:
    if request.param == "sqlite-dir":
        return runtime_factory()
    pg = request.getfixturevalue("pg_url")
    s3 = request.getfixturevalue("s3_server")
    from bunko.store.db import migrate

    migrate(pg)
    return runtime_factory(database_url=pg, **s3.settings_overrides(bucket=f"b{uuid.uuid4().hex[:12]}"))


@pytest.fixture
def coll(rt: Any) -> str:
    name = f"c-{uuid.uuid4().hex[:10]}"
    create_collection(rt, name)
    return name


@pytest.fixture(scope="session")
def bad(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return S.make_invalid_samples(tmp_path_factory.mktemp("invalid"))


def _drain(rt: Any) -> None:
    run_worker(rt.settings, make_processor(rt), worker_id="test", drain=True)


def _doc(rt: Any, doc_id: str) -> Document:
    with rt.sessions() as s:
        d = s.get(Document, doc_id)
        assert d is not None
        _ = d.pages
        return d


def _chunks(rt: Any, doc_id: str) -> list[Chunk]:
    with rt.sessions() as s:
        return list(s.scalars(select(Chunk).where(Chunk.document_id == doc_id).order_by(Chunk.chunk_index)))


def _similar(needle: str, hay: str) -> float:
    """Best fuzzy match of ``needle`` inside ``hay`` (OCR may drop or swap a character)."""
    hay = hay.replace("\n", "").replace(" ", "")
    n = len(needle)
    best = 0.0
    for i in range(0, max(1, len(hay) - n + 1)):
        best = max(best, difflib.SequenceMatcher(None, needle, hay[i:i + n]).ratio())
        if best > 0.97:
            break
    return best


def _observed(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def _submit(rt: Any, coll: str, path: Path, **kw: Any) -> str:
    return str(submit_document(rt, collection=coll, path=path, filename=path.name, owner_id="u1", **kw).id)


def test_born_digital_pdf_becomes_chunks_with_its_sentences_and_vectors(rt, coll, samples):
    doc_id = _submit(rt, coll, samples["born_digital.pdf"])
    _drain(rt)
    doc = _doc(rt, doc_id)
    assert doc.status == "completed", doc.error
    assert doc.page_count == S.BORN_DIGITAL_PAGES
    assert {p.source for p in doc.pages} == {"layer"}
    text = "".join(c.text for c in _chunks(rt, doc_id)).replace("\n", "")
    for sentence in S.BORN_DIGITAL_SENTENCES:
        assert sentence in text
    from bunko.collections import get_collection

    vname = get_collection(rt, coll).vector_collection
    assert rt.vectors.count(vname, document_id=doc_id) == doc.chunk_count == len(_chunks(rt, doc_id))
    assert rt.objects.exists(f"thumbnails/{doc_id}.png")


def test_table_stays_in_one_chunk(rt, coll, samples):
    doc_id = _submit(rt, coll, samples["born_digital.pdf"])
    _drain(rt)
    _year, _item, amount = S.BORN_DIGITAL_TABLE_FACT
    holding = [c for c in _chunks(rt, doc_id) if amount in c.text]
    assert len(holding) == 1
    table = holding[0]
    assert table.kind == "table"
    # Every row of the table is in that one chunk.
    for row in S.BORN_DIGITAL_TABLE:
        for cell in row:
            assert cell in table.text


@pytest.mark.parametrize(
    ("sample", "sentences"),
    [
        pytest.param("scanned.pdf", S.SCANNED_SENTENCES, id="scanned-image-only"),
        pytest.param("broken_layer.pdf", S.BROKEN_LAYER_SENTENCES, id="broken-text-layer"),
    ],
)
def test_pages_without_a_good_text_layer_are_ocrd_into_chunks_with_their_sentences(
    rt, coll, samples, sample, sentences
):
    doc_id = _submit(rt, coll, samples[sample])
    _drain(rt)
    doc = _doc(rt, doc_id)
    assert doc.status == "completed", doc.error
    assert all(p.source != "layer" for p in doc.pages)
    text = "".join(c.text for c in _chunks(rt, doc_id))
    for sentence in sentences:
        assert _similar(sentence, text) >= 0.9, sentence


def test_duplicate_upload_is_detected_per_collection(rt, coll, samples):
    first = _submit(rt, coll, samples["born_digital.pdf"])
    with pytest.raises(DuplicateDocument) as info:
        _submit(rt, coll, samples["born_digital.pdf"])
    assert info.value.existing_id == first
    # Another collection may hold the same file.
    other = f"c-{uuid.uuid4().hex[:10]}"
    create_collection(rt, other)
    assert _submit(rt, other, samples["born_digital.pdf"]) != first


def test_a_file_someone_else_holds_privately_becomes_the_uploaders_own_document(rt, coll, samples):
    """Issue 15.3: the duplicate check answers only what the uploader may read. bob's copy of
    alice's private scan is his own document, processed from scratch: no OCR result is shared
    (a cached one would finish faster and tell him alice had it), and each copy's OCR outputs go
    when that copy is deleted."""
    from bunko.domain import Principal
    from bunko.ingest.submit import delete_document
    from bunko.store.keys import ocr_cache_prefix

    pdf = samples["scanned.pdf"]
    alice, bob = Principal("alice", "user"), Principal("bob", "user")
    first = submit_document(rt, collection=coll, path=pdf, filename="secret.pdf", owner_id="alice",
                            visibility="private", uploader=alice).id
    _drain(rt)
    copy = submit_document(rt, collection=coll, path=pdf, filename="guess.pdf", owner_id="bob",
                           uploader=bob).id
    assert copy != first
    with pytest.raises(DuplicateDocument) as own:  # his own copy, once more: that he may know
        submit_document(rt, collection=coll, path=pdf, filename="again.pdf", owner_id="bob", uploader=bob)
    assert own.value.existing_id == copy and first not in str(own.value) and "secret" not in str(own.value)
    engine = rt.ocr_engines[0].name
    ocr_before, embed_before = _observed("ocr_duration_seconds_count", engine=engine), _observed(
        "embedding_duration_seconds_count")
    _drain(rt)
    # bob's copy was read by the OCR engine page by page (and the time of each read observed), as a
    # first upload would be; its chunks were embedded, not taken from alice's.
    assert _observed("ocr_duration_seconds_count", engine=engine) - ocr_before >= len(S.SCANNED_PAGES)
    assert _observed("embedding_duration_seconds_count") > embed_before
    for doc_id in (first, copy):
        assert _doc(rt, doc_id).status == "completed"
        assert rt.objects.list(ocr_cache_prefix(doc_id))
    assert all(k.startswith("ocr-outputs/documents/") for k in rt.objects.list("ocr-outputs/"))
    delete_document(rt, first)
    assert rt.objects.list(ocr_cache_prefix(first)) == []
    assert rt.objects.list(ocr_cache_prefix(copy)) and _doc(rt, copy).chunk_count > 0


@pytest.mark.parametrize(("visibility", "roles", "words"), [
    ("roles", [], "needs at least one role"),
    ("public", [], "visibility must be one of"),
    ("roles", ["root"], "unknown role"),
])
def test_the_core_refuses_a_visibility_no_one_could_read_whoever_calls_it(rt, coll, samples, visibility,
                                                                          roles, words):
    """One validator, in the core: the CLI's uploads (which call submit_document directly) meet
    the same rules as the API's, and nothing is stored for a refused one."""
    with pytest.raises(InvalidInput, match=words):
        _submit(rt, coll, samples["born_digital.pdf"], visibility=visibility, allowed_roles=roles)
    from bunko.collections import get_collection

    coll_id = get_collection(rt, coll).id
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Document).where(Document.collection_id == coll_id)) == 0
    assert rt.objects.list(f"raw-pdfs/{coll_id}/") == []


def test_a_pdf_with_only_an_owner_password_is_ingested(rt, coll, bad):
    """Copy/print restrictions with no password to open: every reader shows its text, so Bunko
    ingests it; only a user password (one needed to open the file) is refused."""
    doc_id = _submit(rt, coll, bad["encrypted_no_password"])
    _drain(rt)
    doc = _doc(rt, doc_id)
    assert doc.status == "completed", doc.error
    text = "".join(c.text for c in _chunks(rt, doc_id)).replace("\n", "")
    assert S.BORN_DIGITAL_SENTENCES[0] in text


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("corrupt", CorruptPdf, "damaged"),
        ("encrypted", EncryptedPdf, "password"),
        ("empty", EmptyPdf, "empty"),
        ("not_pdf", NotAPdf, "not a PDF"),
    ],
)
def test_invalid_files_are_refused_and_leave_nothing_behind(rt, coll, bad, name, error, words):
    from bunko.collections import get_collection

    coll_id = get_collection(rt, coll).id
    with pytest.raises(error) as info:
        _submit(rt, coll, bad[name])
    assert words.lower() in info.value.message.lower()
    # The PostgreSQL database and the bucket are shared by the session: look at this collection.
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Document).where(Document.collection_id == coll_id)) == 0
        assert s.scalar(select(func.count()).select_from(Job).join(Document, Job.document_id == Document.id)
                        .where(Document.collection_id == coll_id)) == 0
    assert rt.objects.list(f"raw-pdfs/{coll_id}/") == []


def test_oversized_file_is_refused(runtime_factory, samples):
    rt = runtime_factory(max_upload_bytes=10_000)
    create_collection(rt, "small")
    with pytest.raises(DocumentTooLarge) as info:
        _submit(rt, "small", samples["scanned.pdf"])
    assert "limit" in info.value.message and "BUNKO_MAX_UPLOAD_BYTES" in info.value.message
    assert rt.objects.list("raw-pdfs/") == []


def test_decompression_bomb_fails_its_own_document_and_the_worker_lives_on(runtime_factory, bad, samples):
    rt = runtime_factory(sandbox_memory_mb=512, sandbox_page_timeout_s=30)
    create_collection(rt, "bombs")
    bomb = _submit(rt, "bombs", bad["bomb"])
    good = _submit(rt, "bombs", samples["born_digital.pdf"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _drain(rt)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    d = _doc(rt, bomb)
    assert d.status == "failed"
    assert d.error_code in {"unsafe", "timeout"}, d.error
    assert d.error
    # The worker (this process) never held the inflated stream: its peak grew by far less than the
    # sandbox limit, and it went on to complete the next document.
    assert (after - before) < 256 * 1024
    assert _doc(rt, good).status == "completed"


def test_worker_killed_mid_document_is_resumed_with_exact_counts(tmp_path, milvus_server, samples):
    """A real worker process is SIGKILLed while OCR'ing a scanned PDF; after its lease expires a
    second worker completes the document with exactly the chunks and vectors of a clean run."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BUNKO_")},
        "BUNKO_DATA_DIR": str(tmp_path / "data"),
        "BUNKO_MILVUS_URI": milvus_server,
        "BUNKO_JOB_LEASE_S": "3",
        "BUNKO_JOB_BACKOFF_S": "0",
        "BUNKO_OCR_ENGINES": '["rapidocr"]',
    }
    from bunko.runtime import Runtime
    from bunko.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", milvus_uri=milvus_server, job_lease_s=3,
                        job_backoff_s=0, ocr_engines=["rapidocr"], _env_file=None)  # type: ignore[call-arg]
    rt = Runtime(settings)
    name = f"kill-{uuid.uuid4().hex[:8]}"
    create_collection(rt, name)
    # Multi-page scanned document: extraction takes seconds, so the kill lands mid-document.
    pdf = samples["scanned.pdf"]
    doc_id = _submit(rt, name, pdf)

    bunko = str(Path(sys.executable).parent / "bunko")
    first = subprocess.Popen([bunko, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    killed_at = ""
    while time.monotonic() < deadline:
        d = _doc(rt, doc_id)
        if d.status == "processing" and d.stage in {"extract", "chunk", "embed", "index"} and d.progress > 0:
            killed_at = f"{d.stage} {d.progress:.2f}"
            break
        if d.status in {"completed", "failed"}:
            pytest.fail(f"document finished ({d.status}) before the worker could be killed")
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert killed_at, "worker never reached the middle of the document"
    assert _doc(rt, doc_id).status == "processing"  # resumable, not completed, not lost

    second = subprocess.run([bunko, "worker", "--once"], env=env, capture_output=True, timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    # --once returns at once if the lease has not expired yet: wait and retry until it is claimed.
    deadline = time.monotonic() + 120
    while _doc(rt, doc_id).status != "completed" and time.monotonic() < deadline:
        time.sleep(1)
        subprocess.run([bunko, "worker", "--once"], env=env, capture_output=True, timeout=300)
    d = _doc(rt, doc_id)
    assert d.status == "completed", (killed_at, d.error)

    # The exact count a clean run gives, computed independently of the killed run.
    from bunko.collections import collection_config, get_collection
    from bunko.ingest.extract import extract_document
    from bunko.text.chunking import chunk_pages

    coll = get_collection(rt, name)
    cfg = collection_config(coll)
    pages = extract_document(pdf, sandbox=settings.sandbox, ocr=settings.ocr, engines=rt.ocr_engines)
    expected = len(chunk_pages(pages,
                               chunk_size=cfg.chunk_size, chunk_overlap=cfg.chunk_overlap,
                               table_max_chars=cfg.table_max_chars))
    chunks = _chunks(rt, doc_id)
    assert len(chunks) == expected == d.chunk_count
    assert len({c.chunk_index for c in chunks}) == expected  # no duplicates
    assert rt.vectors.count(coll.vector_collection, document_id=doc_id) == expected
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Page).where(Page.document_id == doc_id)) == d.page_count

"""The embedded vector store as local processes live with it: Milvus's C++ engine per data
directory (``bunko.store.milvus_local``), shared, restarted, stopped when idle; Milvus Lite files
that a new process finds ``released``; a data directory made by the Milvus Lite release."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bunko.store.milvus_local import LocalMilvus, find_engine
from bunko.store.vectors import VectorRow, VectorStore, open_vector_store

DIM = 8


def _rows(doc: str, n: int, seed: int = 0) -> list[VectorRow]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        v = rng.normal(size=DIM)
        out.append(VectorRow(chunk_id=f"{doc}-{i}", document_id=doc, collection_id="c", page_no=i + 1,
                             chunk_index=i, text=f"本文 {doc} {i}", tokens=f"本文 {doc} 語{i}",
                             dense=v / np.linalg.norm(v)))
    return out


def _search(store: VectorStore, name: str, row: VectorRow) -> list[str]:
    hits = store.hybrid_search(name, dense=np.asarray(row.dense), query_tokens=row.tokens.split()[-1],
                               filter_expr='collection_id == "c"', limit=5)
    return [h.chunk_id for h in hits]


def _state(settings) -> dict[str, int]:
    return json.loads((settings.engine_milvus_root / "server.json").read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def engine_settings(settings_factory):
    settings = settings_factory(embedded_milvus="engine")
    assert find_engine(None) is not None, "run scripts/milvus-server.sh build (make setup does)"
    return settings


def test_two_stores_on_one_data_directory_share_one_engine(engine_settings):
    a = open_vector_store(engine_settings)
    b = open_vector_store(engine_settings)
    assert a.uri == b.uri and a.uri.startswith("http://127.0.0.1:")
    a.ensure_collection("shared", DIM, index_type="FLAT")
    rows = _rows("d1", 3)
    a.upsert("shared", rows)
    assert b.count("shared") == 3
    assert _search(b, "shared", rows[1])[0] == "d1-1"


def test_a_killed_engine_is_restarted_and_keeps_flushed_rows(engine_settings):
    store = open_vector_store(engine_settings)
    store.ensure_collection("k", DIM, index_type="FLAT")
    rows = _rows("d", 5)
    store.upsert("k", rows)
    before = _state(engine_settings)
    os.kill(before["engine_pid"], signal.SIGKILL)
    _wait(lambda: not _alive(before["supervisor_pid"]), 15, "the supervisor to notice its engine died")
    # The same store object: the next call starts a new engine, reconnects, loads the collection.
    assert _search(store, "k", rows[2])[0] == "d-2"
    assert store.count("k") == 5
    assert _state(engine_settings)["engine_pid"] != before["engine_pid"]


def test_the_engine_dies_with_a_killed_supervisor(engine_settings):
    store = open_vector_store(engine_settings)
    store.ensure_collection("s", DIM, index_type="FLAT")
    state = _state(engine_settings)
    os.kill(state["supervisor_pid"], signal.SIGKILL)
    _wait(lambda: not _alive(state["engine_pid"]), 15, "the engine to follow its supervisor")
    store.upsert("s", _rows("x", 2))
    assert store.count("s") == 2


def test_an_idle_engine_stops_and_the_next_process_starts_it_again(settings_factory):
    settings = settings_factory(embedded_milvus="engine", milvus_idle_s=1.0)
    store = open_vector_store(settings)
    store.ensure_collection("idle", DIM, index_type="FLAT")
    store.upsert("idle", _rows("d", 2))
    state = _state(settings)
    store.close()  # no client connection left
    _wait(lambda: not _alive(state["supervisor_pid"]) and not _alive(state["engine_pid"]), 20,
          "the idle engine to stop")
    assert LocalMilvus(settings.engine_milvus_root, find_engine(None)).running_port() is None
    again = open_vector_store(settings)
    assert again.count("idle") == 2


def test_an_engine_in_use_is_not_stopped_as_idle(settings_factory):
    settings = settings_factory(embedded_milvus="engine", milvus_idle_s=1.0)
    store = open_vector_store(settings)
    store.ensure_collection("busy", DIM, index_type="FLAT")
    state = _state(settings)
    time.sleep(4)  # four idle checks pass while this process holds its connection
    assert _alive(state["engine_pid"])
    assert store.count("busy") == 0


def test_a_new_process_finds_a_milvus_lite_collection_searchable(tmp_path):
    """Milvus Lite releases every collection when its process exits; the next process loads it
    on first use instead of failing with ``call load()``."""
    path = tmp_path / "lite" / "milvus.db"
    script = (
        "import sys, numpy as np\n"
        "from tests.integration.test_embedded_engine import _rows\n"
        "from bunko.store.vectors import VectorStore\n"
        "s = VectorStore(sys.argv[1]); s.ensure_collection('l', 8, index_type='FLAT')\n"
        "s.upsert('l', _rows('d', 4))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=120,
                   cwd=Path(__file__).resolve().parents[2])
    store = VectorStore(str(path))
    assert _search(store, "l", _rows("d", 4)[3])[0] == "d-3"


def test_a_data_directory_of_the_milvus_lite_release_opens_with_its_vectors(settings_factory):
    settings = settings_factory(embedded_milvus="engine")
    lite = VectorStore(str(settings.lite_milvus_path))
    lite.ensure_collection("old", DIM, index_type="IVF_FLAT")
    rows = _rows("old", 6, seed=3)
    lite.upsert("old", rows)
    lite.close()
    store = open_vector_store(settings)
    assert "127.0.0.1" in store.uri
    assert store.count("old") == 6
    assert _search(store, "old", rows[4])[0] == "old-4"  # BM25 rebuilt from the copied terms too
    assert (settings.lite_milvus_path / "copied-to-engine").exists()
    assert open_vector_store(settings).count("old") == 6  # copied once, not twice


def test_the_embedded_data_directory_is_private(settings_factory):
    from bunko.runtime import Runtime

    settings = settings_factory(embedded_milvus="engine")
    settings.data_dir.mkdir(mode=0o755)  # as an earlier release left it
    rt = Runtime(settings)
    rt.vectors.ensure_collection("p", DIM, index_type="FLAT")
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((settings.data_dir / "bunko.db").stat().st_mode) == 0o600
    for f in settings.engine_milvus_root.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f


def test_engine_asked_for_but_missing_is_a_clear_error(settings_factory, tmp_path):
    from bunko.errors import ConfigError

    settings = settings_factory(embedded_milvus="engine", milvus_engine_dir=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"scripts/milvus-server\.sh build"):
        open_vector_store(settings)


def test_searching_an_empty_collection_finds_nothing_instead_of_failing(engine_settings):
    """The C++ engine refuses to score BM25 with no rows ("NaN or Inf"); an empty collection is an
    ordinary state (created, nothing ingested yet, or every document deleted)."""
    store = open_vector_store(engine_settings)
    store.ensure_collection("empty", DIM, index_type="FLAT")
    row = _rows("d", 1)[0]
    assert _search(store, "empty", row) == []
    assert store.search_bm25("empty", "本文", filter_expr="") == []
    store.upsert("empty", [row])
    store.delete_document("empty", "d")
    assert _search(store, "empty", row) == []

"""Opening a data directory made before the embedded engine: its Milvus Lite vectors move over.

Releases before the C++ engine kept the embedded vectors in a Milvus Lite file
(``<data_dir>/milvus.db``). The first time the engine opens such a directory, each collection is
copied row by row (stored dense vectors, terms, text and ACL fields; Milvus recomputes the BM25
sparse vectors from the terms), so nothing is re-embedded. A marker in the Lite folder records
the copy; the Lite file itself is left in place for the user to delete.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bunko.store.vectors import IndexType, VectorStore

log = logging.getLogger(__name__)
MARKER = "copied-to-engine"
_BATCH = 1000


def copy_lite_collections(lite_path: Path, engine: VectorStore) -> int:
    """Copy every collection of the Milvus Lite file at ``lite_path`` into ``engine`` (once)."""
    marker = (lite_path if lite_path.is_dir() else lite_path.parent) / MARKER
    if marker.exists():
        return 0
    lite = VectorStore(str(lite_path))
    copied = 0
    try:
        for name in lite._client.list_collections():
            dim, index_type, _ = lite.layout(name)
            engine.ensure_collection(name, dim, index_type=_engine_index(index_type))
            for rows in lite.iter_rows(name, _BATCH):
                engine.upsert_rows(name, rows)
                copied += len(rows)
            engine.flush(name)
            log.info("copied %s from the Milvus Lite file %s into the embedded engine", name, lite_path)
    finally:
        lite.close()
    marker.write_text("the vectors here were copied into the embedded Milvus engine (../vectors)\n")
    return copied


def _engine_index(index_type: str | None) -> IndexType:
    # The local engine builds FLAT and IVF_FLAT only (HNSW needs a Milvus server).
    return "IVF_FLAT" if index_type == "IVF_FLAT" else "FLAT"

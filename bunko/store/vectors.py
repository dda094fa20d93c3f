"""Vectors and BM25 in Milvus (a Milvus Lite file or a Milvus server), one collection per Bunko
collection.

Each row is a chunk: its dense vector, its Sudachi terms in ``tokens`` (Milvus's BM25 function turns
them into the ``sparse`` field), the text and citation fields, and the ACL fields the search filter
uses. Search is one ``hybrid_search`` call: a dense request and a BM25 request, both carrying the
same filter expression (so access control happens inside the search, never after it), fused by a
``WeightedRanker``.

The ``tokens`` field uses Milvus's ``standard`` analyzer, the only one besides ``jieba`` in Milvus
Lite (no ``whitespace``): measured here, it keeps our space-separated Japanese terms whole
(``東京`` does not match ``東京都庁``), lowercases Latin, and splits on punctuation inside ASCII terms
(``+deb12u1`` matches ``deb12u1``, ``-lc`` matches ``lc``; ``foo_bar`` stays one term).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from pydantic import SecretStr

from bunko.domain import Hit
from bunko.errors import StoreUnavailable

if TYPE_CHECKING:
    from bunko.settings import Settings
    from bunko.store.milvus_local import LocalMilvus

_T = TypeVar("_T")

IndexType = Literal["IVF_FLAT", "HNSW", "FLAT"]

TEXT_MAX_BYTES = 65535
TOKENS_MAX_BYTES = 65535
SECTION_MAX_BYTES = 2048
TITLE_MAX_BYTES = 4096
ID_MAX_BYTES = 64
ROLES_MAX = 16
TAGS_MAX = 64
TAG_MAX_BYTES = 256

_OUTPUT_FIELDS = ["chunk_id", "document_id", "page_no", "chunk_index", "text", "kind", "section", "title"]
_UPSERT_BATCH = 256


@dataclass
class VectorRow:
    """One chunk as stored in Milvus."""

    chunk_id: str
    document_id: str
    collection_id: str
    page_no: int
    chunk_index: int
    text: str
    tokens: str  # space-separated terms from bunko.text.tokenize.index_tokens
    dense: np.ndarray | Sequence[float]
    kind: str = "text"
    section: str = ""
    title: str = ""
    owner_id: str = ""
    visibility: str = "collection"
    allowed_roles: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    created_at: int = 0  # epoch seconds; 0 means "now" at upsert

    def to_entity(self) -> dict[str, Any]:
        dense = np.asarray(self.dense, dtype=np.float32).reshape(-1)
        return {
            "chunk_id": self.chunk_id,
            "document_id": self.document_id,
            "collection_id": self.collection_id,
            "page_no": int(self.page_no),
            "chunk_index": int(self.chunk_index),
            "kind": self.kind,
            "section": _clip(self.section, SECTION_MAX_BYTES),
            "title": _clip(self.title, TITLE_MAX_BYTES),
            "text": _clip(self.text, TEXT_MAX_BYTES),
            # A term cut in half would be a wrong term: clip at a space.
            "tokens": _clip(self.tokens, TOKENS_MAX_BYTES, at=" "),
            "dense": dense.tolist(),
            "owner_id": self.owner_id,
            "visibility": self.visibility,
            "allowed_roles": list(self.allowed_roles)[:ROLES_MAX],
            "reader_roles": role_key(self.allowed_roles),
            "tags": [_clip(t, TAG_MAX_BYTES) for t in self.tags[:TAGS_MAX]],
            "created_at": int(self.created_at or time.time()),
        }


def role_key(roles: Sequence[str]) -> str:
    """The ``reader_roles`` value: each role between spaces, so ``like "% user %"`` matches a role."""
    return " " + " ".join(r for r in list(roles)[:ROLES_MAX] if r and " " not in r) + " "


def _clip(text: str, max_bytes: int, *, at: str | None = None) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    cut = raw[:max_bytes].decode("utf-8", errors="ignore")
    if at is not None and at in cut:
        cut = cut[: cut.rindex(at)]
    return cut


@dataclass(frozen=True)
class DenseIndex:
    """The dense index and its search parameters (per collection)."""

    index_type: IndexType = "IVF_FLAT"
    nlist: int = 128
    nprobe: int = 128
    hnsw_m: int = 16
    hnsw_ef_construction: int = 200
    hnsw_ef: int = 64

    def build_params(self) -> dict[str, Any]:
        if self.index_type == "IVF_FLAT":
            return {"nlist": self.nlist}
        if self.index_type == "HNSW":
            return {"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction}
        return {}

    def search_params(self, limit: int) -> dict[str, Any]:
        if self.index_type == "IVF_FLAT":
            return {"nprobe": min(self.nprobe, self.nlist)}
        if self.index_type == "HNSW":
            return {"ef": max(self.hnsw_ef, limit)}
        return {}


def _is_unavailable(exc: BaseException) -> bool:
    from pymilvus.exceptions import ConnectError, MilvusUnavailableException

    if isinstance(exc, (ConnectError, MilvusUnavailableException, ConnectionError)):
        return True
    text = f"{exc} {getattr(exc, 'message', '')}".lower()
    if any(s in text for s in ("fail connecting", "unavailable", "connection refused", "deadline exceeded")):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and _is_unavailable(cause)


def _is_not_loaded(exc: BaseException) -> bool:
    """Milvus's "collection not loaded / released" refusal (code 101), which a load repairs."""
    text = f"{exc} {getattr(exc, 'message', '')}".lower()
    return getattr(exc, "code", None) == 101 or "released" in text or "not loaded" in text


def _is_empty_bm25(exc: BaseException) -> bool:
    """The C++ engine's refusal to score BM25 where no row exists ("NaN or Inf value")."""
    return "nan or inf" in f"{exc} {getattr(exc, 'message', '')}".lower()


def _quiet_pymilvus() -> None:
    """pymilvus logs every failed RPC with a traceback before raising it; Bunko translates each
    failure into one BunkoError that its edge reports once, so those lines are only noise."""
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)


def _client_options(uri: str) -> dict[str, Any]:
    """Client settings for local engines.

    A dedicated connection: pymilvus shares one connection per address between clients and never
    closes it, even when the last client closes; the embedded engine stops when no connection
    is left, so each store owns and closes its own.

    Keepalive: pymilvus pings every 10 s even with no call in flight;
    a gRPC server with default settings (Milvus Lite's in-process server, the local C++ engine)
    allows a ping only every 5 minutes and answers the third early one with GOAWAY
    ``too_many_pings``. A loopback connection needs no keepalive, so local URIs ping only while a
    call is in flight, at the server's minimum interval. A remote Milvus (its server permits 5 s
    pings) keeps pymilvus's defaults, which notice a dead peer across a network."""
    local = "://" not in uri or uri.startswith(("http://127.0.0.1:", "http://localhost:"))
    if not local:
        return {}
    return {
        "dedicated": True,
        "grpc_options": {
            "grpc.keepalive_time_ms": 300_000,
            "grpc.keepalive_permit_without_calls": 0,
        }
    }


class VectorStore:
    """Milvus collections for Bunko chunks; ``uri`` is a Milvus Lite file path or a server URI.

    ``local`` is the embedded engine behind ``uri`` (``bunko.store.milvus_local``): when it has
    stopped (idle, or killed) a call starts it again and reconnects instead of failing. A collection
    that a new engine or process finds ``released`` is loaded on first use: nothing that code can
    repair becomes an error."""

    def __init__(
        self, uri: str, *, token: str | SecretStr | None = "", timeout: float | None = 30.0,
        local: LocalMilvus | None = None,
    ) -> None:
        if isinstance(token, SecretStr):
            token = token.get_secret_value()
        self._token = token or ""
        self._timeout = timeout
        self._local = local
        self._loaded: set[str] = set()
        self.uri = uri
        if "://" not in uri:
            Path(uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._client = self._open(uri)

    def _open(self, uri: str) -> Any:
        from pymilvus import MilvusClient

        _quiet_pymilvus()
        try:
            return MilvusClient(uri=uri, token=self._token, timeout=self._timeout, **_client_options(uri))
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot reach Milvus at {uri!r}: {getattr(exc, 'message', exc)}. "
                "Check BUNKO_MILVUS_URI (a Milvus Lite file path or http://host:19530) and that the "
                "server is up",
                detail={"uri": uri},
            ) from exc

    def _reconnect(self) -> None:
        assert self._local is not None
        with contextlib.suppress(Exception):
            self._client.close()
        with self._local.connect() as uri:
            self.uri = uri
            self._client = self._open(uri)
            self._client.list_collections()  # the connection is open before the start lock goes
        self._loaded.clear()

    def _run(self, what: str, call: Callable[[], _T], *, collection: str | None = None) -> _T:
        """``call()`` with Milvus failures translated: an unreachable embedded engine is restarted
        and a released collection loaded, once each, before the call is retried."""
        reconnected = loaded = False
        while True:
            try:
                if collection is not None and collection not in self._loaded:
                    self._ensure_loaded(collection)
                return call()
            except StoreUnavailable:
                raise
            except Exception as exc:
                if _is_unavailable(exc):
                    if self._local is not None and not reconnected:
                        reconnected = True
                        try:
                            self._reconnect()
                        except StoreUnavailable:
                            raise
                        except Exception as again:
                            raise self._unavailable(what, again) from again
                        continue
                    raise self._unavailable(what, exc) from exc
                if collection is not None and _is_not_loaded(exc) and not loaded:
                    loaded = True
                    self._loaded.discard(collection)
                    continue
                raise

    def _unavailable(self, what: str, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(
            f"Milvus at {self.uri!r} is unavailable during {what}: {getattr(exc, 'message', exc)}",
            detail={"uri": self.uri},
        )

    def _ensure_loaded(self, name: str) -> None:
        from pymilvus.client.types import LoadState

        if not self._client.has_collection(name):
            return  # the call itself says what is missing
        if self._client.get_load_state(name).get("state") != LoadState.Loaded:
            self._client.load_collection(name)
        self._loaded.add(name)

    def close(self) -> None:
        self._client.close()

    # --- collections ---------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return self._run("has_collection", lambda: bool(self._client.has_collection(name)))

    # --- whole collections, row by row (backups, moving between stores) -------------------------

    def layout(self, name: str) -> tuple[int, str | None, list[str]]:
        """(dense dimension, dense index type, every stored field but the BM25 sparse vector, which
        Milvus computes from ``tokens`` on insert)."""
        fields = self._client.describe_collection(name)["fields"]
        dim = next(int(f["params"]["dim"]) for f in fields if f["name"] == "dense")
        index = self._client.describe_index(name, "dense") or {}
        return dim, index.get("index_type"), [f["name"] for f in fields if f["name"] != "sparse"]

    def iter_rows(self, name: str, batch_size: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Every row of ``name`` as stored (see ``layout``), a batch at a time."""
        _, _, names = self.layout(name)
        self._ensure_loaded(name)
        it = self._client.query_iterator(name, batch_size=batch_size, filter="", output_fields=names)
        try:
            while rows := it.next():
                yield rows
        finally:
            it.close()

    def upsert_rows(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Rows as ``iter_rows`` gives them (no re-embedding), then made durable by ``flush``."""
        self._run("upsert", lambda: self._client.upsert(name, rows))

    def flush(self, name: str) -> None:
        self._run("flush", lambda: self._client.flush(name))

    def ensure_collection(
        self,
        name: str,
        dim: int,
        *,
        index_type: IndexType = "IVF_FLAT",
        index_params: dict[str, Any] | None = None,
    ) -> None:
        """Create the collection with its schema and indexes if it does not exist; load it."""
        self._run("ensure_collection", lambda: self._create(name, dim, index_type, index_params))
        self._loaded.add(name)

    def _create(
        self, name: str, dim: int, index_type: IndexType, index_params: dict[str, Any] | None
    ) -> None:
        from pymilvus import DataType, Function, FunctionType

        if self._client.has_collection(name):
            self._client.load_collection(name)
            return
        c = self._client
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("chunk_id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_BYTES)
        schema.add_field("document_id", DataType.VARCHAR, max_length=ID_MAX_BYTES)
        schema.add_field("collection_id", DataType.VARCHAR, max_length=ID_MAX_BYTES)
        schema.add_field("page_no", DataType.INT64)
        schema.add_field("chunk_index", DataType.INT64)
        schema.add_field("kind", DataType.VARCHAR, max_length=16)
        schema.add_field("section", DataType.VARCHAR, max_length=SECTION_MAX_BYTES)
        schema.add_field("title", DataType.VARCHAR, max_length=TITLE_MAX_BYTES)
        schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_BYTES)
        schema.add_field(
            "tokens",
            DataType.VARCHAR,
            max_length=TOKENS_MAX_BYTES,
            enable_analyzer=True,
            analyzer_params={"tokenizer": "standard"},
        )
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("owner_id", DataType.VARCHAR, max_length=ID_MAX_BYTES)
        schema.add_field("visibility", DataType.VARCHAR, max_length=16)
        schema.add_field(
            "allowed_roles",
            DataType.ARRAY,
            element_type=DataType.VARCHAR,
            max_capacity=ROLES_MAX,
            max_length=ID_MAX_BYTES,
        )
        # allowed_roles again as " user viewer ": the ACL filter matches it with `like`, because
        # array_contains cannot be indexed in Milvus Lite and scans every row (measured at 10k
        # rows: 945 ms with array_contains, 9 ms with like).
        schema.add_field("reader_roles", DataType.VARCHAR, max_length=ROLES_MAX * (ID_MAX_BYTES + 1) + 1)
        schema.add_field(
            "tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=TAGS_MAX,
            max_length=TAG_MAX_BYTES,
        )
        schema.add_field("created_at", DataType.INT64)
        schema.add_function(
            Function(
                name="tokens_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["tokens"],
                output_field_names=["sparse"],
            )
        )
        dense = DenseIndex(index_type=index_type)
        params = {**dense.build_params(), **(index_params or {})}
        idx = c.prepare_index_params()
        idx.add_index("dense", index_type=index_type, metric_type="COSINE", params=params)
        idx.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        # Scalar indexes on the fields the ACL filter reads (Milvus Lite cannot index ARRAY).
        for scalar in ("document_id", "collection_id", "owner_id", "visibility"):
            idx.add_index(scalar, index_type="INVERTED")
        c.create_collection(name, schema=schema, index_params=idx)
        c.load_collection(name)

    def drop(self, name: str) -> None:
        def drop() -> None:
            if self._client.has_collection(name):
                self._client.drop_collection(name)

        self._run("drop_collection", drop)
        self._loaded.discard(name)

    # --- rows ----------------------------------------------------------------------------------

    def upsert(self, name: str, rows: Sequence[VectorRow]) -> int:
        """Insert or replace rows by ``chunk_id`` and flush (Milvus Lite searches unflushed data
        ~50× slower). Running it twice with the same rows leaves the same rows."""
        if not rows:
            return 0
        def upsert() -> None:
            for i in range(0, len(rows), _UPSERT_BATCH):
                self._client.upsert(name, [r.to_entity() for r in rows[i : i + _UPSERT_BATCH]])
            self._client.flush(name)

        self._run("upsert", upsert)
        return len(rows)

    def delete_document(self, name: str, document_id: str) -> None:
        def delete() -> None:
            self._client.delete(name, filter=f"document_id == {quote(document_id)}")
            self._client.flush(name)

        self._run("delete", delete, collection=name)

    def count(self, name: str, document_id: str | None = None, *, filter_expr: str = "") -> int:
        expr = _and(f"document_id == {quote(document_id)}" if document_id is not None else "", filter_expr)
        res = self._run("count", lambda: self._client.query(
            name, filter=expr, output_fields=["count(*)"], consistency_level="Strong"
        ), collection=name)
        return int(res[0]["count(*)"]) if res else 0

    # --- search --------------------------------------------------------------------------------

    def hybrid_search(
        self,
        name: str,
        *,
        dense: np.ndarray,
        query_tokens: str,
        filter_expr: str,
        dense_k: int = 20,
        sparse_k: int = 20,
        weights: tuple[float, float] = (0.7, 0.3),
        limit: int = 20,
        search_params: DenseIndex | None = None,
        fusion: Literal["weighted", "rrf"] = "weighted",
        rrf_k: int = 60,
    ) -> list[Hit]:
        """Dense + BM25 in one Milvus call with its own rankers, ``filter_expr`` applied inside both
        legs. (Bunko's own min-max fusion, :mod:`bunko.retrieve.fusion`, fuses :meth:`search_legs`.)

        ``weights`` are (dense, bm25); with ``"weighted"`` Milvus normalises the scores itself. A
        query with no terms (all punctuation) runs the
        dense leg alone; a zero weight drops its leg.

        With weighted fusion a chunk found by one leg only gets nothing from the other, so a
        BM25-only match ranks below every dense candidate (whose normalised cosine is ~0.9 with
        e5): ask for ``limit >= dense_k + sparse_k`` to get the whole union and let the reranker
        decide."""
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        index = search_params or DenseIndex()
        vec = np.asarray(dense, dtype=np.float32).reshape(-1).tolist()
        reqs: list[AnnSearchRequest] = []
        leg_weights: list[float] = []
        if weights[0] > 0:
            reqs.append(
                AnnSearchRequest(
                    data=[vec],
                    anns_field="dense",
                    param={"metric_type": "COSINE", "params": index.search_params(dense_k)},
                    limit=dense_k,
                    expr=filter_expr or None,
                )
            )
            leg_weights.append(weights[0])
        if weights[1] > 0 and query_tokens.strip():
            reqs.append(
                AnnSearchRequest(
                    data=[query_tokens],
                    anns_field="sparse",
                    param={"metric_type": "BM25", "params": {}},
                    limit=sparse_k,
                    expr=filter_expr or None,
                )
            )
            leg_weights.append(weights[1])
        if not reqs:
            return []
        ranker = RRFRanker(rrf_k) if fusion == "rrf" else WeightedRanker(*leg_weights, norm_score=True)
        try:
            res = self._run("hybrid_search", lambda: self._client.hybrid_search(
                name, reqs=reqs, ranker=ranker, limit=limit, output_fields=_OUTPUT_FIELDS,
            ), collection=name)
        except Exception as exc:
            if not _is_empty_bm25(exc):
                raise
            if weights[0] <= 0:
                return []
            # Milvus's C++ engine cannot score BM25 over a collection with no rows (its average
            # document length is 0): the BM25 leg has nothing to find, the dense leg says so.
            return self.search_dense(name, dense, filter_expr=filter_expr, limit=limit,
                                     search_params=search_params)
        return _hits(res[0] if res else [])

    def search_legs(
        self, name: str, *, dense: np.ndarray, query_tokens: str, filter_expr: str, dense_k: int = 20,
        sparse_k: int = 20, weights: tuple[float, float] = (0.7, 0.3),
        search_params: DenseIndex | None = None,
    ) -> tuple[list[Hit], list[Hit]]:
        """The dense and the BM25 leg as two searches (raw cosine and BM25 scores), a leg with zero
        weight skipped: for fusing outside Milvus, and for the raw scores refusal looks at."""
        dense_hits = (self.search_dense(name, dense, filter_expr=filter_expr, limit=dense_k,
                                        search_params=search_params) if weights[0] > 0 else [])
        sparse_hits = (self.search_bm25(name, query_tokens, filter_expr=filter_expr, limit=sparse_k)
                       if weights[1] > 0 else [])
        return dense_hits, sparse_hits

    def dense_scores(self, name: str, dense: np.ndarray, chunk_ids: Sequence[str], *,
                     filter_expr: str) -> dict[str, float]:
        """The cosine of ``dense`` with each of ``chunk_ids`` that ``filter_expr`` admits, read from
        the stored vectors (exact whatever the index): the dense score of a chunk only BM25 found."""
        if not chunk_ids:
            return {}
        expr = _and(filter_expr, f"chunk_id in [{', '.join(quote(c) for c in chunk_ids)}]")
        rows = self._run("query", lambda: self._client.query(
            name, filter=expr, output_fields=["chunk_id", "dense"], limit=len(chunk_ids),
        ), collection=name)
        q = np.asarray(dense, dtype=np.float32).reshape(-1)
        q = q / (float(np.linalg.norm(q)) or 1.0)
        out: dict[str, float] = {}
        for row in rows:
            v = np.asarray(row["dense"], dtype=np.float32)
            out[str(row["chunk_id"])] = float(v @ q) / (float(np.linalg.norm(v)) or 1.0)
        return out

    def bm25_scores(self, name: str, query_tokens: str, chunk_ids: Sequence[str], *,
                    filter_expr: str) -> dict[str, float]:
        """The BM25 score of each of ``chunk_ids`` that ``filter_expr`` admits and that holds a
        query term (the others score 0): the BM25 score of a chunk only the dense leg found."""
        if not chunk_ids:
            return {}
        expr = _and(filter_expr, f"chunk_id in [{', '.join(quote(c) for c in chunk_ids)}]")
        hits = self.search_bm25(name, query_tokens, filter_expr=expr, limit=len(chunk_ids))
        return {h.chunk_id: h.score for h in hits}

    def search_dense(
        self, name: str, dense: np.ndarray, *, filter_expr: str, limit: int = 20,
        search_params: DenseIndex | None = None,
    ) -> list[Hit]:
        """The dense leg alone (benchmarks compare it with BM25-only and hybrid)."""
        index = search_params or DenseIndex()
        res = self._run("search", lambda: self._client.search(
            name,
            data=[np.asarray(dense, dtype=np.float32).reshape(-1).tolist()],
            anns_field="dense",
            search_params={"metric_type": "COSINE", "params": index.search_params(limit)},
            filter=filter_expr,
            limit=limit,
            output_fields=_OUTPUT_FIELDS,
        ), collection=name)
        return _hits(res[0] if res else [])

    def search_bm25(self, name: str, query_tokens: str, *, filter_expr: str, limit: int = 20) -> list[Hit]:
        """The BM25 leg alone."""
        if not query_tokens.strip():
            return []
        try:
            res = self._bm25(name, query_tokens, filter_expr, limit)
        except Exception as exc:
            if _is_empty_bm25(exc):
                return []  # no rows to score (see hybrid_search)
            raise
        hits = _hits(res[0] if res else [])
        if hits and all(h.score <= 0 for h in hits):
            # Milvus Lite reports BM25 as a distance (the score negated, best first); the C++
            # engine reports the score. BM25 with Lucene's idf is never negative, so this is Lite's.
            hits = [replace(h, score=-h.score) for h in hits]
        return hits

    def _bm25(self, name: str, query_tokens: str, filter_expr: str, limit: int) -> Any:
        return self._run("search", lambda: self._client.search(
            name,
            data=[query_tokens],
            anns_field="sparse",
            search_params={"metric_type": "BM25", "params": {}},
            filter=filter_expr,
            limit=limit,
            output_fields=_OUTPUT_FIELDS,
        ), collection=name)


def _hits(rows: Any) -> list[Hit]:
    seen: set[str] = set()
    hits: list[Hit] = []
    for row in rows:
        ent = row.get("entity", row)
        cid = str(ent.get("chunk_id", row.get("id")))
        if cid in seen:
            continue
        seen.add(cid)
        hits.append(
            Hit(
                chunk_id=cid,
                document_id=ent["document_id"],
                page_no=int(ent["page_no"]),
                chunk_index=int(ent["chunk_index"]),
                text=ent["text"],
                score=float(row.get("distance", 0.0)),
                kind=ent.get("kind", "text"),
                section=ent.get("section", ""),
                title=ent.get("title", ""),
            )
        )
    return hits


# The escapes Milvus's expression parser accepts (measured: it refuses \b, \xNN, \uNNNN, octal).
_ESCAPES = {"\\": "\\\\", '"': '\\"', "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _and(*exprs: str) -> str:
    return " and ".join(f"({e})" for e in exprs if e)


def quote(value: str) -> str:
    """A Milvus string literal for ``value``: double-quoted, backslashes and quotes escaped, so no
    value can end the literal and inject expression syntax. Milvus's parser knows only a few
    escapes (no ``\\x``/``\\u``); other control characters are dropped, which can only make a
    filter match less."""
    out = ['"']
    for ch in value:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20 or ch == "\x7f":
            continue
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def open_vector_store(settings: Settings) -> VectorStore:
    """The vector store ``settings`` name: ``BUNKO_MILVUS_URI``, else the embedded default (Milvus's
    C++ engine for the data directory when it is installed, else a Milvus Lite file)."""
    if settings.milvus_uri:
        return VectorStore(settings.milvus_uri, token=settings.milvus_token)
    from bunko.errors import ConfigError
    from bunko.store.milvus_local import LocalMilvus, find_engine

    binary = None if settings.embedded_milvus == "lite" else find_engine(settings.milvus_engine_dir)
    if binary is None:
        if settings.embedded_milvus == "engine":
            raise ConfigError(
                "BUNKO_EMBEDDED_MILVUS=engine but Milvus's C++ engine is not installed"
                + (f" in {settings.milvus_engine_dir}" if settings.milvus_engine_dir else "")
                + ": run `scripts/milvus-server.sh build` (make setup does), set BUNKO_MILVUS_ENGINE_DIR "
                "to its folder, or use BUNKO_EMBEDDED_MILVUS=lite"
            )
        return VectorStore(str(settings.lite_milvus_path))
    local = LocalMilvus(settings.engine_milvus_root, binary, idle_s=settings.milvus_idle_s)
    with local.connect() as uri:
        store = VectorStore(uri, local=local)
        store._run("list_collections", store._client.list_collections)  # connected before the lock goes
    if settings.lite_milvus_path.exists():
        from bunko.store.vector_upgrade import copy_lite_collections

        copy_lite_collections(settings.lite_milvus_path, store)
    return store

"""Document collections: a database row, a Milvus collection and an object prefix, made together.

Per-collection search and chunking parameters live in ``CollectionConfig``; the operator fills it
from a ``DocumentCollection`` spec, the API and CLI from their arguments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bunko.access import can_read_collection, validate_visibility
from bunko.domain import Principal, Visibility
from bunko.errors import Conflict, InvalidInput, NotFound
from bunko.retrieve import recipe
from bunko.store import keys
from bunko.store.db import Chunk, Collection, Document, Job, Page, PiiFinding, new_id
from bunko.store.objects import delete_document_objects

if TYPE_CHECKING:
    from bunko.runtime import Runtime

PiiPolicy = Literal["off", "flag", "redact"]

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DEFAULT_COLLECTION = "default"


class CollectionConfig(BaseModel):
    """Search, rerank and chunking parameters of one collection (ARCHITECTURE.md §5, §6)."""

    model_config = ConfigDict(extra="forbid")

    chunk_size: int = Field(default=recipe.CHUNK_SIZE, ge=50, le=8192)
    chunk_overlap: int = Field(default=recipe.CHUNK_OVERLAP, ge=0, le=4096)
    table_max_chars: int = Field(default=recipe.TABLE_MAX_CHARS, ge=100, le=65536)
    dense_weight: float = Field(default=recipe.WEIGHTS[0], ge=0, le=1)
    sparse_weight: float = Field(default=recipe.WEIGHTS[1], ge=0, le=1)
    dense_k: int = Field(default=recipe.DENSE_K, ge=1, le=1000)
    sparse_k: int = Field(default=recipe.SPARSE_K, ge=1, le=1000)
    rerank_top_k: int = Field(default=recipe.RERANK_TOP_K, ge=1, le=100)
    rerank_threshold: float = Field(default=recipe.RERANK_THRESHOLD, ge=0, le=1)
    index_type: Literal["IVF_FLAT", "HNSW", "FLAT"] = recipe.INDEX_TYPE
    nlist: int = Field(default=recipe.NLIST, ge=1, le=65536)
    nprobe: int = Field(default=recipe.NPROBE, ge=1, le=65536)
    hnsw_m: int = Field(default=16, ge=2, le=2048)
    hnsw_ef_construction: int = Field(default=200, ge=1, le=65536)
    hnsw_ef: int = Field(default=recipe.HNSW_EF, ge=1, le=65536)
    # What the index was built with (bunko.retrieve.recipe); `bunko reindex` moves it to the current.
    index_version: str = recipe.INDEX_VERSION
    # Refusal without a reranker (bunko.retrieve.recipe.refuse); None turns it off.
    not_found_bm25_share: float | None = Field(default=recipe.NOT_FOUND_BM25_SHARE, ge=0, le=10)
    # Personal information (bunko.pii): "flag" records what each page holds; "redact" also
    # replaces it in what is stored, indexed, shown and sent to an LLM. The original PDF is kept.
    pii: PiiPolicy = "off"

    @model_validator(mode="after")
    def _check(self) -> CollectionConfig:
        if self.index_version not in recipe.INDEX_RECIPES:
            raise ValueError(
                f"unknown index_version {self.index_version!r}: known versions are "
                f"{', '.join(sorted(recipe.INDEX_RECIPES))} (leave it out for the current one)"
            )
        if abs(self.dense_weight + self.sparse_weight - 1.0) > 1e-6:
            raise ValueError(
                f"dense_weight + sparse_weight must be 1 (got {self.dense_weight} + {self.sparse_weight})"
            )
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        if self.rerank_top_k > max(self.dense_k, self.sparse_k):
            raise ValueError("rerank_top_k cannot exceed the search top-k (dense_k / sparse_k)")
        return self

    def index_params(self) -> dict[str, int]:
        if self.index_type == "HNSW":
            return {"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction}
        if self.index_type == "IVF_FLAT":
            return {"nlist": self.nlist}
        return {}

    def search_params(self) -> dict[str, int]:
        if self.index_type == "HNSW":
            return {"ef": max(self.hnsw_ef, self.dense_k)}
        if self.index_type == "IVF_FLAT":
            return {"nprobe": min(self.nprobe, self.nlist)}
        return {}


def parse_config(raw: dict[str, object] | None) -> CollectionConfig:
    try:
        return CollectionConfig.model_validate(raw or {})
    except ValidationError as exc:
        raise InvalidInput(
            "invalid collection configuration: "
            + "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors()),
            detail=exc.errors(include_url=False, include_context=False),
        ) from exc


def vector_collection_name(name: str) -> str:
    # Milvus names allow letters, digits and underscores only.
    return "bunko_" + name.replace("-", "_")


def create_collection(
    rt: Runtime,
    name: str,
    *,
    description: str = "",
    config: CollectionConfig | dict[str, object] | None = None,
    visibility: str = Visibility.collection.value,
    allowed_roles: Iterable[str] = (),
    pipeline: str = "",
    collection_id: str | None = None,
    embedding: tuple[str, int] | None = None,
    owner: dict[str, str] | None = None,
    vectors: bool = True,
) -> Collection:
    """Create a collection: its vector collection, its marker object, then its row.

    The one way a collection comes to be, for the API, the CLI and the operator alike. The
    operator passes the row id (the custom resource's uid), the ``embedding`` model id and
    dimension its Pipeline serves (otherwise this process's embedder decides) and ``owner``: with it a
    marker object (``bunko.store.keys.collection_marker``) says which resource owns the prefix.
    ``vectors=False`` (the operator, which has no vector-store client) leaves the vector collection
    to the first document a worker indexes (``bunko.ingest.pipeline.index_chunks``).
    """
    if not NAME_RE.match(name):
        raise InvalidInput(
            f"invalid collection name {name!r}: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (like a Kubernetes name)"
        )
    cfg = config if isinstance(config, CollectionConfig) else parse_config(config)
    visibility, roles = validate_visibility(visibility, allowed_roles)
    with rt.sessions() as s:
        if s.scalar(select(Collection).where(Collection.name == name)) is not None:
            raise Conflict(f"collection {name!r} already exists")
    model_id, dim = embedding or (rt.embedder.model_id, rt.embedder.dim)
    cid = collection_id or new_id()
    vname = vector_collection_name(name)
    # The vector collection first: if it fails, no row claims a collection that cannot be searched.
    if vectors:
        rt.vectors.ensure_collection(vname, dim, index_type=cfg.index_type, index_params=cfg.index_params())
    if owner:
        rt.objects.put(keys.collection_marker(cid), json.dumps({"name": name, "id": cid, **owner}).encode(),
                       content_type="application/json")
    try:
        with rt.sessions.begin() as s:
            coll = Collection(
                id=cid,
                name=name,
                description=description,
                pipeline=pipeline,
                embedding_model=model_id,
                embedding_dim=dim,
                vector_collection=vname,
                config=cfg.model_dump(),
                visibility=visibility,
                allowed_roles=roles,
            )
            s.add(coll)
    except IntegrityError as exc:
        # Created by another process since the check above (two api workers starting together):
        # the unique name decides, and the loser hears Conflict, not a database error.
        raise Conflict(f"collection {name!r} already exists") from exc
    return coll


def delete_collection(
    rt: Runtime, collection_id: str, *, vector_collection: str,
    queue_drop: Callable[[Session, str], object] | None = None,
) -> None:
    """Remove a collection everywhere: its vectors, every document's objects, its uploads folder,
    its rows and its cached answers. Safe to run again after a failure anywhere in the middle.

    ``queue_drop`` (the operator, which has no vector-store client): instead of dropping the vector
    collection now, called in the transaction that deletes the rows, to queue the drop for the
    workers; no query finds the collection from then on either."""
    with rt.sessions() as s:
        docs = s.execute(select(Document.id, Document.raw_key).where(Document.collection_id == collection_id)).all()
    # Vectors first: from then on no answer can cite these documents, whatever fails next.
    if queue_drop is None:
        rt.vectors.drop(vector_collection)
    for doc_id, raw_key in docs:
        delete_document_objects(rt.objects, collection_id, doc_id, raw_key=raw_key)
    rt.objects.delete_prefix(keys.collection_prefix(collection_id))
    doc_ids = [doc_id for doc_id, _ in docs]
    with rt.sessions.begin() as s:
        for model in (Job, Chunk, Page, PiiFinding):
            s.execute(delete(model).where(model.document_id.in_(doc_ids)))  # type: ignore[attr-defined]
        s.execute(delete(Document).where(Document.collection_id == collection_id))
        s.execute(delete(Collection).where(Collection.id == collection_id))
        if queue_drop is not None:
            queue_drop(s, vector_collection)
    rt.cache.bump(f"collection:{collection_id}")


def ensure_default_collection(rt: Runtime) -> Collection:
    try:
        return get_collection(rt, DEFAULT_COLLECTION)
    except NotFound:
        try:
            return create_collection(rt, DEFAULT_COLLECTION, description="既定のコレクション")
        except Conflict:  # created concurrently by another process
            return get_collection(rt, DEFAULT_COLLECTION)


def get_collection(rt: Runtime, name_or_id: str) -> Collection:
    with rt.sessions() as s:
        coll = s.scalar(
            select(Collection).where(or_(Collection.name == name_or_id, Collection.id == name_or_id))
        )
    if coll is None:
        raise NotFound(_not_found_message(name_or_id))
    return coll


def _not_found_message(name_or_id: str) -> str:
    return (f"collection {name_or_id!r} does not exist; list them with `bunko collections` "
            "or GET /api/v1/collections")


def readable_collection(rt: Runtime, principal: Principal, name_or_id: str) -> Collection:
    """The collection, if ``principal`` may read it. One that exists but is hidden from them is
    refused with the very message of one that does not exist, so asking reveals nothing."""
    try:
        coll = get_collection(rt, name_or_id)
    except NotFound:
        coll = None
    if coll is None or not can_read_collection(principal, coll):
        raise NotFound(_not_found_message(name_or_id))
    return coll


def list_collections(rt: Runtime) -> list[tuple[Collection, int]]:
    """Every collection with its number of documents."""
    with rt.sessions() as s:
        counts = dict(
            s.execute(select(Document.collection_id, func.count()).group_by(Document.collection_id)).all()
        )
        colls = list(s.scalars(select(Collection).order_by(Collection.name)))
    return [(c, int(counts.get(c.id, 0))) for c in colls]


def stored_config(raw: dict[str, object] | None) -> CollectionConfig:
    """A collection's stored configuration. One written before index versions existed was built
    with version 1's analysis and had no refusal: it is read as such, so it keeps answering as it
    did until it is reindexed."""
    data = dict(raw or {})
    if "index_version" not in data:
        data["index_version"] = recipe.LEGACY_INDEX_VERSION
        data.setdefault("not_found_bm25_share", None)
    return parse_config(data)


def collection_config(coll: Collection) -> CollectionConfig:
    return stored_config(coll.config)

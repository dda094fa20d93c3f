"""``DocumentCollection`` (bunko.dev/v1alpha1): a searchable set of documents — a Milvus collection
(dense vectors + BM25 over Sudachi tokens), object-store prefixes and a database row, made and
removed by the operator through the core's collection lifecycle (:mod:`bunko.collections`).

Chunking, search and rerank fields take their defaults and bounds from the core's
:class:`~bunko.collections.CollectionConfig`, which the API and the CLI use too.
"""

from __future__ import annotations

from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import ConfigDict, Field

from bunko.collections import CollectionConfig
from bunko.domain import Role, Visibility
from bunko.operator.kinds.base import CONDITIONS, Kind, SpecModel, cel, defaulted
from bunko.operator.kinds.pipeline import DNS_LABEL

_BOUNDS = {Ge: "ge", Le: "le", Gt: "gt", Lt: "lt"}


def core(name: str, **kwargs: Any) -> Any:
    """A field with the default and bounds of ``CollectionConfig.<name>``."""
    info = CollectionConfig.model_fields[name]
    bounds = {_BOUNDS[type(m)]: getattr(m, _BOUNDS[type(m)]) for m in info.metadata if type(m) in _BOUNDS}
    return Field(default=info.default, **bounds, **kwargs)


class PipelineRef(SpecModel):
    name: str = Field(max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class Chunking(SpecModel):
    size: int = core("chunk_size", description="Characters per chunk (recursive split on Japanese separators).")
    overlap: int = core("chunk_overlap")
    table_max_chars: int = core(
        "table_max_chars", description="Tables up to this size stay in one chunk; larger ones split by rows."
    )


class Weights(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.dense + self.sparse >= 0.999 && self.dense + self.sparse <= 1.001",
                "search.weights.dense + search.weights.sparse must be 1",
            ),
        )
    )

    dense: float = core("dense_weight")
    sparse: float = core("sparse_weight")


class Ivf(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            ("self.nprobe <= self.nlist", "index.ivf.nprobe cannot exceed index.ivf.nlist"),
        )
    )

    nlist: int = core("nlist")
    nprobe: int = core("nprobe")


class Hnsw(SpecModel):
    m: int = core("hnsw_m")
    ef_construction: int = core("hnsw_ef_construction")
    ef: int = core("hnsw_ef")


class Index(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            ("!has(self.hnsw) || self.type == 'HNSW'", "index.hnsw is only used with index.type HNSW"),
            ("!has(self.ivf) || self.type == 'IVF_FLAT'", "index.ivf is only used with index.type IVF_FLAT"),
        )
    )

    type: Literal["IVF_FLAT", "HNSW", "FLAT"] = CollectionConfig.model_fields["index_type"].default
    ivf: Ivf | None = None
    hnsw: Hnsw | None = None


class Search(SpecModel):
    dense_top_k: int = core("dense_k")
    sparse_top_k: int = core("sparse_k")
    weights: Weights = defaulted(Weights)
    index: Index = defaulted(Index)


class Rerank(SpecModel):
    top_k: int = core("rerank_top_k")
    threshold: float = core(
        "rerank_threshold", description='Passages scoring below it are dropped; none left means "not found".'
    )


class Access(SpecModel):
    visibility: Visibility = Visibility.collection
    roles: list[Role] = Field(default_factory=list, max_length=4, json_schema_extra={"default": []})


class DocumentCollectionSpec(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.rerank.topK <= self.search.denseTopK || self.rerank.topK <= self.search.sparseTopK",
                "rerank.topK cannot exceed the search top-k (search.denseTopK / search.sparseTopK)",
            ),
            ("self.chunking.overlap < self.chunking.size", "chunking.overlap must be smaller than chunking.size"),
            (
                "self.access.visibility == 'roles' || size(self.access.roles) == 0",
                "access.roles is only used with access.visibility roles",
            ),
        )
    )

    pipeline_ref: PipelineRef = Field(
        description="The Pipeline (same namespace) whose embedding model fills this collection."
    )
    description: str = Field(default="", max_length=1024)
    chunking: Chunking = defaulted(Chunking)
    search: Search = defaulted(Search)
    rerank: Rerank = defaulted(Rerank)
    access: Access = defaulted(Access)
    reindex_policy: Literal["Manual", "Automatic"] = Field(
        default="Manual",
        description="What a change of embedding model, chunking or index does: Manual sets the "
        "ReindexRequired condition; Automatic also re-queues every document.",
    )
    pii: Literal["Off", "Flag", "Redact"] = Field(
        default="Off",
        description="Personal information (My Number, phone numbers, e-mail and postal addresses, card "
        "numbers, person names): Flag records what each page holds for the admin view; Redact also "
        "replaces it in what is indexed, shown and sent to an LLM (the original PDF is kept). A "
        "change re-processes every document, whatever reindexPolicy says.",
    )
    deletion_policy: Literal["Delete", "Retain"] = Field(
        default="Delete",
        description="Delete removes vectors, objects and rows with the resource; Retain keeps them.",
    )

    def config(self) -> CollectionConfig:
        """The core's configuration for this collection (what the API and the CLI also build)."""
        index = self.search.index
        ivf, hnsw = index.ivf or Ivf(), index.hnsw or Hnsw()
        return CollectionConfig(
            chunk_size=self.chunking.size,
            chunk_overlap=self.chunking.overlap,
            table_max_chars=self.chunking.table_max_chars,
            dense_weight=self.search.weights.dense,
            sparse_weight=self.search.weights.sparse,
            dense_k=self.search.dense_top_k,
            sparse_k=self.search.sparse_top_k,
            rerank_top_k=self.rerank.top_k,
            rerank_threshold=self.rerank.threshold,
            index_type=index.type,
            nlist=ivf.nlist,
            nprobe=ivf.nprobe,
            hnsw_m=hnsw.m,
            hnsw_ef_construction=hnsw.ef_construction,
            hnsw_ef=hnsw.ef,
            pii=self.pii.lower(),
        )


KIND = Kind(
    kind="DocumentCollection",
    plural="documentcollections",
    short_names=["bdc"],
    spec=DocumentCollectionSpec,
    header=__doc__ or "",
    columns=[
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        # The Ready condition's reason: why it is not ready (ReindexRequired=False is good news).
        {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
        {"name": "Documents", "type": "integer", "jsonPath": ".status.documentCount"},
        {"name": "Chunks", "type": "integer", "priority": 1, "jsonPath": ".status.chunkCount"},
        {"name": "Pipeline", "type": "string", "jsonPath": ".spec.pipelineRef.name"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    # The name becomes a Milvus collection and an object prefix: a DNS label, as for a Service.
    metadata={
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 63, "pattern": DNS_LABEL}},
    },
    status={
        "phase": {"type": "string", "enum": ["Pending", "Ready", "Reindexing", "Failed", "Deleting"]},
        "collectionId": {"type": "string"},
        "vectorCollection": {"type": "string"},
        "embeddingModel": {"type": "string"},
        "embeddingDim": {"type": "integer"},
        "documentCount": {"type": "integer"},
        "chunkCount": {"type": "integer"},
        "observedGeneration": {"type": "integer"},
        "indexedWith": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "indexVersion": {
            "type": "string",
            "description": "The retrieval recipe the index was built with (the "
            "reindex.bunko.dev/requested annotation rebuilds it with the current one).",
        },
        "reindexRequested": {
            "type": "string",
            "description": "The reindex.bunko.dev/requested annotation value whose rebuild was queued.",
        },
        "reindexJob": {
            "type": "integer",
            "description": "The workers' job that rebuilds the index for reindexRequested.",
        },
        "reindexedFor": {
            "type": "string",
            "description": "The reindex.bunko.dev/requested annotation value last acted on "
            "(condition Reindexed says how it went).",
        },
        "conditions": CONDITIONS,
    },
)

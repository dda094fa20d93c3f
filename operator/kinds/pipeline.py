"""``Pipeline`` (bunko.dev/v1alpha1): the models Bunko serves (OCR, embedding, reranker, LLM), the
GPUs they share, and the Ray cluster that serves them. The operator plans GPU placement
(:mod:`bunko.operator.planner`) and renders a KubeRay RayService (:mod:`bunko.operator.rayservice`).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any, Literal

from pydantic import ConfigDict, Field

from bunko.domain import MODEL_ROLES, ModelRole
from bunko.operator.catalogue import CPU_ONLY, GPU_PROFILES, non_commercial_ids
from bunko.operator.kinds.base import CONDITIONS, Kind, SpecModel, cel, defaulted

# The Ray release the serving image is built on (images/Dockerfile RAY_VERSION; a test keeps them equal).
RAY_VERSION = "2.60.0"
SERVING_IMAGE = f"ghcr.io/bunko-dev/bunko-serving:{version('bunko')}"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)?$"
CPU_QUANTITY = r"^[0-9]+(m|\.[0-9]+)?$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Device = Literal["gpu", "cpu"]
Dtype = Literal["auto", "fp32", "bf16", "fp16"]
OcrEngine = Literal["yomitoku", "paddleocr", "rapidocr", "tesseract"]
CpuOcrEngine = Literal["rapidocr", "tesseract"]
LlmEngine = Literal["vllm", "transformers", "proxy", "none"]
Quantization = Literal["none", "awq", "gptq-int4", "gptq-int8", "fp8"]

ONE_SHARE = (
    "!(has(self.resources) && has(self.resources.memoryGiB) && has(self.resources.gpuFraction))",
    "set at most one of resources.memoryGiB and resources.gpuFraction",
)


def _licence_rule() -> tuple[str, str]:
    # The catalogue's non-commercial models, listed once per role the spec may name them in.
    ids = str(non_commercial_ids()).replace('"', "'")
    uses = [f"self.{r}.model in {ids}" for r in ("ocr", "embedding")]
    uses += [f"(has(self.{r}) && self.{r}.model in {ids})" for r in ("reranker", "llm")]
    return (
        "(has(self.licenseAccepted) && self.licenseAccepted) || !(" + " || ".join(uses) + ")",
        "a selected model (YomiToku: CC BY-NC-SA 4.0; Sarashina embedding: non-commercial licence) "
        "forbids commercial use: set spec.licenseAccepted: true to confirm your use is allowed, "
        "or choose permissive models",
    )


class Gpus(SpecModel):
    type: str = Field(pattern=DNS_LABEL, max_length=40)
    memory_gib: float = Field(gt=0, le=1024)
    count: int = Field(default=1, ge=1, le=16)
    product: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description="The nodes' nvidia.com/gpu.product label (GPU Feature Discovery) for these GPUs; "
        "set, the GPU pods are pinned to such nodes.",
    )
    mig: str | None = Field(
        default=None,
        pattern=r"^[1-7]g\.[0-9]+gb(\+me)?$",
        description="These are MIG instances of this profile (3g.40gb, 1g.10gb ...), as the NVIDIA GPU "
        "operator's mixed strategy advertises them: each worker asks for nvidia.com/mig-<profile> "
        "instead of nvidia.com/gpu, and memoryGiB is the instance's memory.",
    )


class GpuProfile(SpecModel):
    """The GPUs the pipeline may use: a named profile (times count), or an explicit list.
    cpu-only plans every model on CPU."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("has(self.name) != has(self.gpus)", "set exactly one of gpuProfile.name and gpuProfile.gpus")
        )
    )

    name: Literal[(*GPU_PROFILES, CPU_ONLY)] | None = None  # type: ignore[valid-type]
    count: int = Field(default=1, ge=1, le=16)
    gpus: list[Gpus] | None = Field(default=None, min_length=1, max_length=16)
    reserve_gib: float = Field(
        default=0.3, ge=0, le=16, description="Memory kept free on every GPU (driver, fragmentation)."
    )

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name if self.count == 1 else f"{self.count} x {self.name}"
        return ", ".join(f"{g.count} x {g.type} ({g.memory_gib} GiB)" for g in self.gpus or [])


class Resources(SpecModel):
    memory_gib: float | None = Field(
        default=None,
        gt=0,
        le=1024,
        description="Declared GPU memory need per replica; replaces the catalogue estimate.",
    )
    gpu_fraction: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="A fixed share of one GPU (the planner checks that the model fits in it).",
    )
    cpu: float = Field(default=1, ge=0, le=64, description="CPUs Ray reserves per replica.")
    memory: str | None = Field(default=None, pattern=QUANTITY, description="RAM Ray reserves per replica (optional).")


class ModelPart(SpecModel):
    """What every served model says: which weights, on which device, how many replicas."""

    model_config = ConfigDict(json_schema_extra=cel(ONE_SHARE))

    model: str = Field(
        min_length=1,
        max_length=256,
        description="A catalogue id (e.g. cl-nagoya/ruri-v3-310m) or any model with resources.memoryGiB.",
    )
    source: str | None = Field(
        default=None, max_length=512, description="Weights directory or repository (default the model id)."
    )
    device: Device = "gpu"
    dtype: Dtype = "auto"
    replicas: int = Field(default=1, ge=1, le=16)
    resources: Resources = defaulted(Resources)


class Ocr(ModelPart):
    model: OcrEngine  # type: ignore[assignment]
    fallback: list[CpuOcrEngine] = Field(
        default_factory=list,
        max_length=3,
        json_schema_extra={"default": []},
        description="CPU engines tried when the primary fails or is unsure.",
    )


class Embedding(ModelPart):
    dimension: int | None = Field(
        default=None, ge=8, le=32768, description="Vector dimension; only for models the catalogue lacks."
    )
    batch_size: int = Field(default=64, ge=1, le=1024)
    max_seq_length: int = Field(default=512, ge=16, le=32768)


class Reranker(ModelPart):
    """Omit for no reranking (the fusion order is kept)."""

    batch_size: int = Field(default=64, ge=1, le=1024)
    max_seq_length: int = Field(default=512, ge=16, le=32768)


class Llm(ModelPart):
    """Omit (or engine none) for extractive answers."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("self.engine != 'proxy' || has(self.url)", "llm.engine proxy needs llm.url (an OpenAI-compatible server)"),
            (
                "self.engine != 'vllm' || self.device == 'gpu'",
                "llm.engine vllm needs device gpu; use engine transformers on CPU",
            ),
            ("self.quantization == 'none' || self.engine == 'vllm'", "llm.quantization is served by engine vllm only"),
            ONE_SHARE,
        )
    )

    engine: LlmEngine = "vllm"
    url: str | None = Field(default=None, pattern=r"^https?://", max_length=512)
    served_model_name: str | None = Field(default=None, max_length=256)
    quantization: Quantization = "none"
    max_model_len: int = Field(default=8192, ge=256, le=131072)
    max_concurrent_sequences: int = Field(default=4, ge=1, le=1024)
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"

    @property
    def served(self) -> bool:
        """Whether the pipeline runs this LLM itself (proxy forwards, none answers extractively)."""
        return self.engine not in ("proxy", "none")


class Toleration(SpecModel):
    key: str | None = Field(default=None, max_length=253)
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)


class Placement(SpecModel):
    """Where the Ray pods may run. GPU pods also tolerate the nvidia.com/gpu taint and, for a named
    profile (or gpus[].product), require nodes whose nvidia.com/gpu.product label matches."""

    node_selector: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra={"default": {}},
        description="Labels every Ray pod's node must carry (e.g. a node pool).",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"default": []},
        description="Taints every Ray pod tolerates, beside the GPU taint GPU pods always tolerate.",
    )
    gpu_affinity: bool = Field(
        default=True, description="Pin GPU pods to nodes of the planned GPU product (GFD labels)."
    )
    runtime_class_name: str | None = Field(
        default=None,
        max_length=63,
        pattern=DNS_LABEL,
        description="RuntimeClass of the GPU pods (e.g. nvidia where the NVIDIA runtime is not the default).",
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={"default": []},
        description="Secrets for pulling the serving image.",
    )


class HeadGroup(SpecModel):
    cpu: str = Field(default="2", pattern=CPU_QUANTITY)
    memory: str = Field(default="8Gi", pattern=QUANTITY)


class WorkerGroup(SpecModel):
    cpu: str = Field(default="8", pattern=CPU_QUANTITY)
    memory: str = Field(default="48Gi", pattern=QUANTITY)


class Tracing(SpecModel):
    otlp_endpoint: str = Field(
        default="",
        max_length=512,
        pattern=r"^(https?://[^\s]+)?$",
        description="OTLP/HTTP endpoint the Serve replicas export their spans to (the chart's "
        "tracing.otlpEndpoint); empty: off.",
    )
    sample_ratio: float = Field(default=1.0, ge=0, le=1, description="Share of new traces sampled.")


class Ray(SpecModel):
    image: str = Field(default=SERVING_IMAGE, max_length=512)
    version: str = Field(default=RAY_VERSION, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    head: HeadGroup = defaulted(HeadGroup)
    worker: WorkerGroup = defaulted(WorkerGroup)
    service_account_name: str | None = Field(default=None, max_length=253)
    hf_token_secret: str | None = Field(
        default=None,
        max_length=253,
        description="Secret (key hf_token) with a Hugging Face token for gated models.",
    )
    tracing: Tracing = defaulted(Tracing)


class ModelCache(SpecModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.type != 'PersistentVolumeClaim' || has(self.claimName)",
                "modelCache of type PersistentVolumeClaim needs claimName (an existing claim)",
            ),
        )
    )

    type: Literal["PersistentVolumeClaim", "EmptyDir"] = "EmptyDir"
    claim_name: str | None = Field(
        default=None,
        max_length=253,
        description="An existing claim (ReadWriteMany if several GPU workers share it).",
    )
    mount_path: str = Field(default="/models", pattern="^/")


class PipelineSpec(SpecModel):
    model_config = ConfigDict(json_schema_extra=cel(_licence_rule()))

    license_accepted: bool = Field(
        default=False,
        description="Confirms that the use of non-commercial models (YomiToku, Sarashina) is allowed.",
    )
    gpu_profile: GpuProfile
    ocr: Ocr
    embedding: Embedding
    reranker: Reranker | None = None
    llm: Llm | None = None
    ray: Ray = defaulted(Ray)
    model_cache: ModelCache = defaulted(ModelCache)
    placement: Placement = defaulted(Placement)

    def models(self) -> list[tuple[ModelRole, ModelPart]]:
        """The roles this spec names, in the one role order (an LLM of engine none included)."""
        return [(r, part) for r in MODEL_ROLES if (part := getattr(self, r)) is not None]

    def served(self) -> list[tuple[ModelRole, ModelPart]]:
        """The roles the pipeline's own Ray cluster serves: an LLM of engine none is not one."""
        return [(r, p) for r, p in self.models() if not (isinstance(p, Llm) and p.engine == "none")]


PLACEMENT: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "role": {"type": "string"},
            "model": {"type": "string"},
            "replica": {"type": "integer"},
            "device": {"type": "string"},
            "gpu": {"type": "integer"},
            "gpuType": {"type": "string"},
            "numGpus": {"type": "string"},
            "memoryGiB": {"type": "string"},
        },
    },
}

KIND = Kind(
    kind="Pipeline",
    plural="pipelines",
    short_names=["bpl"],
    spec=PipelineSpec,
    header=__doc__ or "",
    columns=[
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        # Why it is not Ready or not planned: the reason of every condition that is False.
        {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.status=="False")].reason'},
        {"name": "Profile", "type": "string", "jsonPath": ".spec.gpuProfile.name"},
        {"name": "LLM", "type": "string", "priority": 1, "jsonPath": ".spec.llm.model"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ],
    metadata={"type": "object"},
    status={
        "phase": {"type": "string", "enum": ["Pending", "Infeasible", "Deploying", "Ready", "Degraded", "Failed"]},
        "observedGeneration": {"type": "integer"},
        "rayService": {"type": "string"},
        "message": {"type": "string"},
        "conditions": CONDITIONS,
        "placement": PLACEMENT,
        "deployments": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"status": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "endpoints": {"type": "object", "additionalProperties": {"type": "string"}},
    },
)

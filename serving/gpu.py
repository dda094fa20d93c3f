"""Each engine caps its own GPU memory: Ray's ``num_gpus`` fractions only schedule, they isolate nothing."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def torch_device(requested: str | None = None) -> str:
    """``requested`` if given, else ``cuda`` when a GPU is visible, else ``cpu``."""
    if requested:
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def half_precision(dtype: str, device: str) -> str | None:
    """The half precision a model runs in: on a GPU fp16 unless the spec asks for bf16 or fp32
    ("auto" means fp16 there); on a CPU none."""
    if not device.startswith("cuda") or dtype not in ("auto", "fp16", "bf16"):
        return None
    return "bf16" if dtype == "bf16" else "fp16"


def cap_gpu_memory(fraction: float | None, device: str) -> None:
    """Limit this process's PyTorch allocator to ``fraction`` of the GPU (no-op on CPU or when unset)."""
    if fraction is None or not device.startswith("cuda"):
        return
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"gpu_memory_fraction must be in (0, 1], got {fraction}")
    import torch

    index = torch.device(device).index or 0
    torch.cuda.set_per_process_memory_fraction(fraction, index)
    log.info("capped torch on %s to %.0f%% of its memory", device, fraction * 100)


def torch_dtype_for(device: str) -> Any:  # a torch.dtype; torch is imported lazily
    """Half precision on GPU (bf16 where the card has it), float32 on CPU."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32

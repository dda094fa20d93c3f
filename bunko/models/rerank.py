"""In-process cross-encoder reranking (sentence-transformers ``CrossEncoder``).

Scores are always probabilities in [0, 1] whatever activation the model saved with it: the raw
logits are taken and a sigmoid applied (one label) or a softmax's "relevant" column (two labels),
so a per-collection threshold such as 0.65 means the same for every model.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from bunko.models.base import Reranker
from bunko.models.embedding import _offline, _torch_dtype, model_unavailable


class CrossEncoderReranker:
    def __init__(self, model_id_or_path: str, *, batch_size: int = 32, device: str | None = None,
                 max_length: int | None = None, half_precision: str | None = None) -> None:
        """``max_length`` caps the tokens per (query, passage) pair; ``half_precision`` ("fp16" or
        "bf16") casts the weights, as the Serve deployment does on a GPU."""
        import torch
        from sentence_transformers import CrossEncoder

        self.model_id = model_id_or_path
        self.batch_size = batch_size
        try:
            self._model = CrossEncoder(model_id_or_path, device=device, local_files_only=_offline())
        except Exception as exc:  # hub errors, OSError, ValueError: all mean "cannot load it"
            raise model_unavailable("reranker", model_id_or_path, exc) from exc
        if max_length:
            self._model.max_length = max_length
        if half_precision:
            self._model.to(_torch_dtype(half_precision))
        self._identity = torch.nn.Identity()

    def score(self, query: str, passages: list[str]) -> list[float]:
        if not passages:
            return []
        logits: Any = self._model.predict(
            [(query, p) for p in passages],
            batch_size=self.batch_size,
            activation_fn=self._identity,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        logits = np.asarray(logits, dtype=np.float64)
        if logits.ndim == 2 and logits.shape[1] == 2:
            shifted = logits - logits.max(axis=1, keepdims=True)
            probs = np.exp(shifted)[:, 1] / np.exp(shifted).sum(axis=1)
        else:
            probs = 1.0 / (1.0 + np.exp(-logits.reshape(len(passages), -1)[:, 0]))
        return [float(p) for p in probs]


@lru_cache(maxsize=4)
def load_reranker(spec: str) -> Reranker | None:
    """The reranker named by ``spec`` (Hugging Face id or local path), loaded once per process;
    ``""`` means no reranker (results keep the fusion order)."""
    spec = spec.strip()
    if not spec:
        return None
    return CrossEncoderReranker(spec)

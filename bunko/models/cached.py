"""An ``Embedder`` that remembers: the same text embedded by the same model is computed once.

Keys are ``emb:<side>:<model id>:<sha256 of the scope and the text>``: the side matters because query and
passage embeddings differ (e5's ``query: `` / ``passage: `` prefixes), and the model id makes a
model change a clean miss. Callers hand in normalised text (``prepare_query`` for queries, the
extraction for passages), so the key is the normalised text. Values are raw little-endian float32.

A cache outage is a miss (``bunko.store.cache`` decides that), so embedding never fails because
of the cache.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

import numpy as np

from bunko import metrics
from bunko.models.base import Embedder
from bunko.store.cache import Cache

log = logging.getLogger(__name__)


class CachedEmbedder:
    def __init__(self, inner: Embedder, cache: Cache, *, ttl_s: int, scope: str = "") -> None:
        """``scope`` partitions the cache (the asking user's id for questions): a shared entry
        made one user's repeat of another's question measurably faster (8 ms against 39 ms in
        ``processing_time_ms``), telling them what someone else had just asked (finding 15.4)."""
        # Wrapping twice would only double the lookups.
        self.inner: Embedder = inner.inner if isinstance(inner, CachedEmbedder) else inner
        self.cache = cache
        self.ttl_s = ttl_s
        self.scope = scope
        self.model_id = self.inner.model_id
        self.dim = self.inner.dim

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.inner!r}, ttl_s={self.ttl_s})"

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._embed("d", texts, self.inner.embed_documents)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed("q", texts, self.inner.embed_queries)

    def _key(self, side: str, text: str) -> str:
        digest = hashlib.sha256(f"{self.scope}\0{text}".encode()).hexdigest()
        return f"emb:{side}:{self.model_id}:{digest}"

    def _embed(self, side: str, texts: list[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if self.ttl_s <= 0:
            return np.asarray(_timed(compute, texts), dtype=np.float32).reshape(len(texts), self.dim)
        keys = [self._key(side, t) for t in texts]
        missing: dict[str, list[int]] = {}  # text -> rows that need it (duplicates embedded once)
        for i, (text, key) in enumerate(zip(texts, keys, strict=True)):
            raw = self.cache.get(key)
            if raw is not None and len(raw) == 4 * self.dim:
                out[i] = np.frombuffer(raw, dtype="<f4")
            else:
                missing.setdefault(text, []).append(i)
        if missing:
            todo = list(missing)
            vectors = np.asarray(_timed(compute, todo), dtype=np.float32).reshape(len(todo), self.dim)
            for text, vec in zip(todo, vectors, strict=True):
                rows = missing[text]
                out[rows] = vec
                self.cache.set(keys[rows[0]], vec.astype("<f4").tobytes(), self.ttl_s)
        computed = sum(map(len, missing.values()))
        if len(texts) - computed:
            metrics.bunko_cache_hits_total.labels(cache="embedding").inc(len(texts) - computed)
        if computed:
            metrics.bunko_cache_misses_total.labels(cache="embedding").inc(computed)
        log.debug("embeddings (%s): %d cached, %d computed", side, len(texts) - computed, computed)
        return out


def _timed(compute: Callable[[list[str]], np.ndarray], texts: list[str]) -> np.ndarray:
    """One embedding batch, its time observed (every embedder, local or HTTP, goes through here)."""
    started = time.perf_counter()
    try:
        return compute(texts)
    finally:
        metrics.embedding_duration_seconds.observe(time.perf_counter() - started)

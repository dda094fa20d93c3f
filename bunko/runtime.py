"""The composed parts of one Bunko process: settings, stores and models, built from Settings.

The API, the worker, the CLI and the operator each build one ``Runtime`` and pass it to the core.
Models load lazily (first use), so a process that never embeds never pays for the model, and the
HTTP variants (``Settings.model_endpoint``) replace the in-process ones without the core knowing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from bunko.errors import ConfigError
from bunko.settings import Settings, get_settings
from bunko.store.db import migrate, session_factory

if TYPE_CHECKING:
    from bunko.models.base import ChatModel, Embedder, OcrEngine, Reranker
    from bunko.pii.detect import PiiDetector
    from bunko.store.cache import Cache
    from bunko.store.objects import ObjectStore
    from bunko.store.vectors import VectorStore


@contextmanager
def _in_process(what: str) -> Iterator[None]:
    """A process installed without the ``local`` extra (an api or worker image) says what to set
    instead of failing on an import deep inside a request."""
    try:
        yield
    except ImportError as exc:
        raise ConfigError(
            f"{what} would run in this process, but this install lacks it ({exc.name or exc}): set "
            "BUNKO_MODEL_ENDPOINT to the Pipeline's model server, or install bunko[local]"
        ) from None


class Runtime:
    def __init__(self, settings: Settings | None = None, *, migrate_db: bool = True) -> None:
        self.settings = settings or get_settings()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.db_url = self.settings.resolved_database_url
        if self.settings.uses_embedded_store:
            # The embedded stores hold the text of private documents: only their owner may read
            # them (a directory made by an earlier release, 0755, is closed here too).
            self.settings.data_dir.chmod(0o700)
        if migrate_db:
            migrate(self.db_url)
        if not self.settings.database_url:
            for suffix in ("", "-wal", "-shm"):
                db_file = self.settings.data_dir / f"bunko.db{suffix}"
                if db_file.exists():
                    db_file.chmod(0o600)
        self.sessions: sessionmaker[Session] = session_factory(self.db_url)
        self._lock = threading.RLock()

    def close(self) -> None:
        """Give back what this runtime opened: model and vector-store clients, the cache connection,
        the database pool. Parts never used were never opened; a part used again after this opens
        anew, so closing twice, or a late request after shutdown, is safe."""
        for name in ("chat", "embedder", "reranker", "ocr_engines", "vectors", "cache", "objects"):
            part = self.__dict__.pop(name, None)
            for item in part if isinstance(part, list) else [part]:
                close = getattr(item, "close", None)
                if callable(close):
                    close()
        self.sessions.kw["bind"].dispose()

    # --- stores ---------------------------------------------------------------------------------

    @cached_property
    def objects(self) -> ObjectStore:
        from bunko.store.objects import open_object_store

        return open_object_store(self.settings)

    @cached_property
    def vectors(self) -> VectorStore:
        from bunko.store.vectors import open_vector_store

        return open_vector_store(self.settings)

    @cached_property
    def cache(self) -> Cache:
        from bunko.store.cache import open_cache

        return open_cache(self.settings)

    # --- models ---------------------------------------------------------------------------------

    # One rule for every model: it runs at BUNKO_MODEL_ENDPOINT (the Pipeline's Ray Serve
    # application) when that is set, in this process otherwise. BUNKO_RERANKER_MODEL empty means no
    # reranker either way; a Pipeline always serves OCR and embedding, so those always exist.

    @cached_property
    def embedder(self) -> Embedder:
        """The embedding model behind the embedding cache (model id + side + text hash, 30 days), so
        a re-run stage or a repeated question does not embed the same text twice."""
        from bunko.models.cached import CachedEmbedder

        with self._lock:
            inner: Embedder
            if self.settings.model_endpoint:
                from bunko.models.http import HttpEmbedder

                inner = HttpEmbedder(self.settings.model_endpoint, timeout_s=self.settings.model_timeout_s)
            else:
                with _in_process("the embedding model"):
                    from bunko.models.embedding import load_embedder

                    inner = load_embedder(self.settings.embedding_model, batch_size=self.settings.embed_batch_size)
            return CachedEmbedder(inner, self.cache, ttl_s=self.settings.embedding_cache_ttl_s)

    def embedder_for(self, user_id: str) -> Embedder:
        """The embedder with a cache of ``user_id``'s own. A cache shared across users is a timing
        oracle: a question someone else just asked, or a document text someone else already
        uploaded, would come back measurably faster (finding 15.4). The cost: the same text from
        two users is embedded twice (~30 ms per question on CPU)."""
        from bunko.models.cached import CachedEmbedder

        return CachedEmbedder(self.embedder, self.cache, ttl_s=self.settings.embedding_cache_ttl_s,
                              scope=f"user:{user_id}")

    @cached_property
    def reranker(self) -> Reranker | None:
        with self._lock:
            if not self.settings.reranker_model:
                return None
            if self.settings.model_endpoint:
                from bunko.models.http import HttpReranker

                return HttpReranker(self.settings.model_endpoint, timeout_s=self.settings.model_timeout_s)
            with _in_process("the reranker"):
                from bunko.models.rerank import load_reranker

                return load_reranker(self.settings.reranker_model)

    @cached_property
    def ocr_engines(self) -> list[OcrEngine]:
        with self._lock:
            if self.settings.model_endpoint:
                from bunko.models.http import HttpOcrEngine

                return [HttpOcrEngine(self.settings.model_endpoint, timeout_s=self.settings.model_timeout_s)]
            with _in_process("OCR"):
                from bunko.models.ocr import load_ocr_engines

                return load_ocr_engines(self.settings.ocr_engines)

    @cached_property
    def pii(self) -> PiiDetector:
        """Personal-information detection for collections whose policy asks for it; GiNZA loads
        on the first page it reads, so a process that never meets such a collection never pays."""
        from bunko.pii.detect import PiiDetector

        return PiiDetector()

    @cached_property
    def chat(self) -> ChatModel | None:
        """The LLM, or None on the embedded default (answers are then extractive)."""
        if not self.settings.llm_url:
            return None
        from bunko.generate.openai_client import OpenAIChatClient

        return OpenAIChatClient(
            self.settings.llm_url,
            model=self.settings.llm_model,
            api_key=self.settings.llm_api_key.get_secret_value() if self.settings.llm_api_key else None,
            timeout_s=self.settings.model_timeout_s,
        )

"""The seam between the core and the models.

The core only ever sees these protocols. Each has an in-process implementation (in this package)
and an HTTP implementation that talks to the Ray Serve application (``bunko.models.http``), chosen
by ``Settings.model_endpoint``; the core does not know which one it holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from bunko.domain import OcrBlock


@runtime_checkable
class Embedder(Protocol):
    """Dense text embeddings, L2-normalised, float32, shape ``(len(texts), dim)``.

    Query/passage prefixes (e5's ``query: `` / ``passage: ``, ruri's) are the implementation's job:
    callers say which side a text is on by the method they call.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


@runtime_checkable
class Reranker(Protocol):
    """Cross-encoder relevance: one score per passage, in [0, 1], higher is more relevant."""

    @property
    def model_id(self) -> str: ...

    def score(self, query: str, passages: list[str]) -> list[float]: ...




@dataclass
class OcrResult:
    engine: str
    blocks: list[OcrBlock] = field(default_factory=list)
    markdown: str = ""
    # Mean of block confidences weighted by text length; 0.0 when nothing was read.
    confidence: float = 0.0


@runtime_checkable
class OcrEngine(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def recognize(self, image: Image.Image, *, dpi: int) -> OcrResult: ...


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@runtime_checkable
class ChatModel(Protocol):
    """An OpenAI-compatible chat completion, streamed token by token."""

    @property
    def model_id(self) -> str: ...

    def stream(
        self, messages: list[ChatMessage], *, max_tokens: int, stop: list[str], temperature: float = 0.0
    ) -> Iterator[str]: ...

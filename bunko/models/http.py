"""The core's model protocols over HTTP, against Bunko's Ray Serve applications.

Set ``BUNKO_MODEL_ENDPOINT`` (e.g. ``http://bunko-serve:8000``) and the pipeline runs unchanged:

=====================  ===========================  ===========================================
class                  protocol                     route (``bunko.serving`` documents bodies)
=====================  ===========================  ===========================================
:class:`HttpEmbedder`  ``Embedder``                 ``POST /embed``, ``GET /embed/health``
:class:`HttpReranker`  ``Reranker``                 ``POST /rerank``, ``GET /rerank/health``
:class:`HttpOcrEngine` ``OcrEngine`` (+ vertical)   ``POST /ocr``, ``GET /ocr/health``
=====================  ===========================  ===========================================

(The LLM is reached through its OpenAI-compatible route by ``bunko.generate.openai_client``.)

Every call has a timeout (``model_timeout_s``), is retried with exponential backoff on connection
errors and 5xx answers, and goes through a circuit breaker per endpoint: after
``failure_threshold`` consecutive failed calls the breaker opens and calls fail at once for
``reset_after_s``; then one trial call is let through (half-open) and its outcome closes or reopens
the breaker. Failures surface as :class:`~bunko.errors.ModelUnavailable` naming the endpoint (a 4xx
answer, a request the model refuses, as :class:`~bunko.errors.InvalidInput`), never as a hang.
"""

from __future__ import annotations

import base64
import io
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
from PIL import Image

from bunko.domain import MODEL_ROUTES, OcrBlock
from bunko.errors import InvalidInput, ModelUnavailable
from bunko.models.base import OcrResult

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})


class CircuitOpen(ModelUnavailable):
    code = "model_circuit_open"


class CircuitBreaker:
    """Consecutive-failure breaker: closed → open (fail fast) → half-open (one trial) → closed."""

    def __init__(
        self,
        endpoint: str,
        *,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_running = False
        self.last_error = ""

    @property
    def state(self) -> str:
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self._clock() - self.opened_at >= self.reset_after_s:
            return "half-open"
        return "open"

    def before_call(self) -> None:
        """Raise ``CircuitOpen`` when calls must not go out now; else let this one through."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half-open" and not self._trial_running:
                self._trial_running = True
                return
            assert self.opened_at is not None
            wait = max(0.0, self.reset_after_s - (self._clock() - self.opened_at))
            raise CircuitOpen(
                f"model endpoint {self.endpoint} is failing ({self.failures} consecutive failures, last: "
                f"{self.last_error}); not calling it for another {wait:.0f} s. Check that the Serve "
                "application is running (`serve status`) and BUNKO_MODEL_ENDPOINT points at it.",
                detail={"endpoint": self.endpoint, "retry_after": wait},
            )

    def record_success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None
            self._trial_running = False
            self.last_error = ""

    def record_failure(self, reason: str) -> None:
        with self._lock:
            self.failures += 1
            self.last_error = reason
            if self._trial_running or self.failures >= self.failure_threshold:
                self.opened_at = self._clock()
            self._trial_running = False


_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(endpoint: str, *, failure_threshold: int = 5, reset_after_s: float = 30.0) -> CircuitBreaker:
    """The process-wide breaker of ``endpoint``: every client of one URL shares what it learned."""
    with _breakers_lock:
        if endpoint not in _breakers:
            _breakers[endpoint] = CircuitBreaker(
                endpoint, failure_threshold=failure_threshold, reset_after_s=reset_after_s
            )
        return _breakers[endpoint]


def _error_message(r: httpx.Response) -> str:
    try:
        err = r.json().get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    except (ValueError, AttributeError):
        pass
    return r.text[:500]


class ModelEndpoint:
    """JSON calls to one route of a model server, with timeout, retries and a circuit breaker."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float | None = None,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        breaker: CircuitBreaker | None = None,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if timeout_s is None:
            from bunko.settings import get_settings

            timeout_s = get_settings().model_timeout_s
        self.url = url.rstrip("/")
        self.timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.breaker = breaker or breaker_for(self.url)
        self._client = client or httpx.Client(timeout=self.timeout)
        self._sleep = sleep

    def _backoff(self, attempt: int) -> float:
        delay = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        return delay * (0.5 + random.random() / 2)  # jitter, so callers do not retry in lockstep

    def call(self, method: str, path: str = "", body: dict[str, Any] | None = None) -> Any:
        url = self.url + path
        self.breaker.before_call()
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self._backoff(attempt - 1))
            try:
                r = self._client.request(method, url, json=body, timeout=self.timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            except httpx.HTTPError as exc:
                # A read/write timeout: the model is up but too slow; retrying would double the load.
                last = f"{type(exc).__name__}: {exc or 'timed out'}"
                break
            if r.status_code in RETRYABLE_STATUS:
                last = f"HTTP {r.status_code}: {_error_message(r)}"
                continue
            if 300 <= r.status_code < 400:
                last = f"HTTP {r.status_code} redirect to {r.headers.get('location')!r}: wrong route?"
                break
            if r.status_code == 404:
                last = f"HTTP 404 on {url}: is this role deployed under that route?"
                break
            if r.status_code >= 400:
                # The endpoint is healthy; this request is what it refused.
                self.breaker.record_success()
                raise InvalidInput(
                    f"model endpoint {url} refused the request: {_error_message(r)}",
                    detail={"endpoint": url, "status": r.status_code},
                )
            try:
                data = r.json()
            except ValueError:
                last = f"answer is not JSON: {r.text[:200]!r}"
                break
            self.breaker.record_success()
            return data
        self.breaker.record_failure(last)
        raise ModelUnavailable(f"model endpoint {url} failed: {last}", detail={"endpoint": url})

    def close(self) -> None:
        self._client.close()


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.strip("/")


class _LazyInfo:
    """Reads ``GET <route>/health`` once, on first use, so constructing a client never blocks."""

    def __init__(self, endpoint: ModelEndpoint) -> None:
        self._endpoint = endpoint
        self._info: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self._info is None:
                info = self._endpoint.call("GET", "/health")
                if not isinstance(info, dict):
                    raise ModelUnavailable(f"{self._endpoint.url}/health did not answer a JSON object")
                self._info = info
            return self._info


class HttpEmbedder:
    """``Embedder`` over ``POST <base>/embed``; ``model_id`` and ``dim`` come from its health route."""

    def __init__(
        self, base_url: str, *, path: str = MODEL_ROUTES["embedding"], request_batch: int = 256, **endpoint: Any
    ) -> None:
        self.endpoint = ModelEndpoint(_join(base_url, path), **endpoint)
        self.request_batch = request_batch
        self._info = _LazyInfo(self.endpoint)

    def __repr__(self) -> str:
        return f"HttpEmbedder({self.endpoint.url!r})"

    @property
    def model_id(self) -> str:
        return str(self._info.get()["model"])

    @property
    def dim(self) -> int:
        return int(self._info.get()["dim"])

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        for i in range(0, len(texts), self.request_batch):
            batch = texts[i : i + self.request_batch]
            data = self.endpoint.call("POST", "/", {"texts": batch, "kind": kind})
            vectors = np.asarray(data.get("vectors", []), dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[0] != len(batch):
                raise ModelUnavailable(
                    f"{self.endpoint.url} returned {vectors.shape[0] if vectors.ndim else 0} vectors for "
                    f"{len(batch)} texts",
                    detail={"endpoint": self.endpoint.url},
                )
            parts.append(vectors)
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, "document")

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, "query")


class HttpReranker:
    """``Reranker`` over ``POST <base>/rerank``."""

    def __init__(self, base_url: str, *, path: str = MODEL_ROUTES["reranker"], **endpoint: Any) -> None:
        self.endpoint = ModelEndpoint(_join(base_url, path), **endpoint)
        self._info = _LazyInfo(self.endpoint)

    def __repr__(self) -> str:
        return f"HttpReranker({self.endpoint.url!r})"

    @property
    def model_id(self) -> str:
        return str(self._info.get()["model"])

    def score(self, query: str, passages: list[str]) -> list[float]:
        if not passages:
            return []
        data = self.endpoint.call("POST", "/", {"query": query, "passages": passages})
        scores = data.get("scores")
        if not isinstance(scores, list) or len(scores) != len(passages):
            raise ModelUnavailable(
                f"{self.endpoint.url} returned {len(scores) if isinstance(scores, list) else 'no'} scores "
                f"for {len(passages)} passages",
                detail={"endpoint": self.endpoint.url},
            )
        return [float(s) for s in scores]


class HttpOcrEngine:
    """``OcrEngine`` over ``POST <base>/ocr``: the page goes as PNG, the result comes back whole.

    ``engines`` restricts which of the deployment's engines run (in that order); default: all of
    them, primary first. ``version`` names the deployment's engines and versions, so an OCR cache
    keyed by (engine, version) misses when the deployment changes.
    """

    name = "serve"

    def __init__(
        self, base_url: str, *, path: str = MODEL_ROUTES["ocr"], engines: list[str] | None = None, **endpoint: Any
    ) -> None:
        self.endpoint = ModelEndpoint(_join(base_url, path), **endpoint)
        self.engines = engines
        self._info = _LazyInfo(self.endpoint)

    def __repr__(self) -> str:
        return f"HttpOcrEngine({self.endpoint.url!r})"

    @property
    def version(self) -> str:
        engines = self._info.get().get("engines", [])
        return "+".join(f"{e['name']}-{e['version']}" for e in engines) or "unknown"

    def _recognize(self, image: Image.Image, dpi: int, vertical: bool) -> OcrResult:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        body: dict[str, Any] = {
            "image_b64": base64.b64encode(buf.getvalue()).decode("ascii"),
            "dpi": dpi,
            "vertical": vertical,
        }
        if self.engines:
            body["engines"] = self.engines
        data = self.endpoint.call("POST", "/", body)
        try:
            blocks = [
                OcrBlock(
                    text=b["text"],
                    bbox=tuple(float(x) for x in b["bbox"]),  # type: ignore[arg-type]
                    confidence=float(b["confidence"]),
                    kind=b.get("kind", "text"),
                )
                for b in data["blocks"]
            ]
            return OcrResult(
                engine=str(data["engine"]),
                blocks=blocks,
                markdown=str(data["markdown"]),
                confidence=float(data["confidence"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelUnavailable(
                f"{self.endpoint.url} returned a malformed OCR result: {exc}",
                detail={"endpoint": self.endpoint.url},
            ) from exc

    def recognize(self, image: Image.Image, *, dpi: int) -> OcrResult:
        return self._recognize(image, dpi, False)

    def recognize_vertical(self, image: Image.Image, *, dpi: int) -> OcrResult:
        return self._recognize(image, dpi, True)



"""Prometheus metrics, with the seed's names. The core observes through these objects; the API
exposes them at ``/metrics``. No web framework here, so the worker and the CLI can import it too.

Labels are kept to bounded sets (route templates, not raw paths; stage and engine names) so a
scraper never sees a cardinality explosion.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SLOW_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

http_requests_total = Counter(
    "http_requests_total", "HTTP requests handled by the API", ["method", "route", "status"]
)
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds", "HTTP request latency (until the response starts)",
    ["method", "route"], buckets=_LATENCY_BUCKETS,
)
rag_queries_total = Counter(
    "rag_queries_total", "Questions answered", ["mode", "cached"]
)
rag_query_duration_seconds = Histogram(
    "rag_query_duration_seconds", "Time spent per query stage (embed, search, rerank, generate, total)",
    ["stage"], buckets=_LATENCY_BUCKETS,
)
ocr_duration_seconds = Histogram(
    "ocr_duration_seconds", "OCR time per page", ["engine"], buckets=_SLOW_BUCKETS
)
embedding_duration_seconds = Histogram(
    "embedding_duration_seconds", "Time per embedding batch", buckets=_LATENCY_BUCKETS
)
milvus_collection_size = Gauge(
    "milvus_collection_size", "Chunks (vectors) stored per collection", ["collection"]
)
bunko_queue_depth = Gauge("bunko_queue_depth", "Ingestion jobs waiting or running", ["status"])
bunko_cache_hits_total = Counter("bunko_cache_hits_total", "Cache hits", ["cache"])
bunko_cache_misses_total = Counter("bunko_cache_misses_total", "Cache misses", ["cache"])


def render_latest() -> tuple[bytes, str]:
    """The exposition text of the default registry and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST

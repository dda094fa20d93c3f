"""Distributed tracing with OpenTelemetry: one trace from a request through the job queue to each
ingest stage and model call.

Off by default, at no cost: the code below only ever calls the OpenTelemetry *API*, whose tracer is
a no-op until a provider is set. ``configure(service)`` sets one when the standard variables ask
for OTLP export (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; the
exporter also reads ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``, ``OTEL_BSP_*`` ...;
``OTEL_SDK_DISABLED=true`` turns it off), and instruments SQLAlchemy, httpx, redis and gRPC (Milvus).
The api instruments FastAPI itself (``bunko.api.main``); the S3 store makes a client span per call
(``client_span``).

Across the queue the W3C ``traceparent`` of the request that enqueued a job travels in the job
row (``jobs.trace_context``); the worker continues that trace (``job_span``). Across HTTP (model
calls to Ray Serve, the LLM) httpx's instrumentation sends ``traceparent``.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace

tracer = trace.get_tracer("bunko")
_configured = False


def enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower() not in ("otlp", ""):
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(service: str) -> bool:
    """Export this process's spans over OTLP/HTTP as ``service`` (unless OTEL_SERVICE_NAME says
    otherwise), when the OTEL_* variables ask for it. Returns whether tracing is on."""
    global _configured
    if _configured:
        return True
    if not enabled():
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # It wraps sqlalchemy.create_engine (bunko.store.db looks it up at call time). Its declared
    # range ends below SQLAlchemy 2.1, which it handles: the engine events it hooks are unchanged
    # (tests/integration/test_tracing.py checks SQL spans arrive).
    SQLAlchemyInstrumentor().instrument(skip_dep_check=True)
    HTTPXClientInstrumentor().instrument()
    RedisInstrumentor().instrument()
    # Milvus: pymilvus speaks gRPC; each call (Search, Query, Insert ...) becomes a client span.
    GrpcInstrumentorClient().instrument()
    atexit.register(provider.shutdown)  # flush what is batched when the process ends
    _configured = True
    return True


def current_traceparent() -> str | None:
    """The W3C traceparent of the span now active, to carry across the job queue (None: no trace)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def job_span(name: str, traceparent: str | None, **attributes: Any) -> Iterator[trace.Span]:
    """A span continuing the trace of the request that enqueued the job (a new trace without one)."""
    context = propagate.extract({"traceparent": traceparent}) if traceparent else None
    with tracer.start_as_current_span(name, context=context, kind=trace.SpanKind.CONSUMER,
                                      attributes=attributes) as span:
        yield span


def client_span(name: str, **attributes: Any) -> Any:
    """A CLIENT span around a call to another service that no instrumentation covers (S3 through
    minio)."""
    return tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes)


def span(name: str, **attributes: Any) -> Any:
    """``with span("vector_search"): ...`` — a child of whatever span is active."""
    return tracer.start_as_current_span(name, attributes=attributes)

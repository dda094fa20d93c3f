"""Tracing inside a Serve replica: the replica exports its spans over OTLP like the api and the
worker (the same ``OTEL_*`` variables, which the operator puts on the Ray pods from the Pipeline's
``ray.tracing``), and continues the caller's trace from the request's ``traceparent`` header, so a
worker's ``ocr`` or ``embed`` stage shows the replica's work below it. Off, it costs nothing."""

from __future__ import annotations

from fastapi import FastAPI

from bunko import tracing

SERVICE = "bunko-serving"


def trace_app(app: FastAPI) -> None:
    """Instrument ``app`` (once per process) when tracing is configured; call it in the
    deployment's ``__init__``, before Serve starts the app."""
    if not tracing.configure(SERVICE):
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    if not getattr(app, "_is_instrumented_by_opentelemetry", False):
        FastAPIInstrumentor.instrument_app(app, excluded_urls="health")

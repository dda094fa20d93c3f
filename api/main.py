"""The FastAPI application: ``create_app()`` (uvicorn ``--factory``) builds one per process.

One :class:`~bunko.runtime.Runtime` per app, made in the lifespan from the settings; on the embedded
default an ingestion worker runs in a thread of the same process unless told otherwise
(``start_worker=False``, ``bunko serve --no-worker``, or ``BUNKO_API_START_WORKER=0``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from bunko import tracing
from bunko.api.errors import install_error_handlers
from bunko.api.jsonlog import configure_logging
from bunko.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from bunko.api.routes import audit, auth, collections, documents, health, openai_compat, query, users
from bunko.api.schemas import ErrorBody
from bunko.api.uploads import FORM_SLACK_BYTES
from bunko.api.web import mount_web
from bunko.settings import Settings, get_settings

log = logging.getLogger("bunko.api")

DEFAULT_BODY_LIMIT = 1 << 20  # every route but the upload: JSON bodies are small
RATE_LIMIT_WINDOW_S = 60


def create_app(settings: Settings | None = None, *, start_worker: bool | None = None) -> FastAPI:
    settings = settings or get_settings()
    run_worker_thread = settings.api_start_worker if start_worker is None else start_worker
    configure_logging()
    traced = tracing.configure("bunko-api")  # before the runtime: its engines get instrumented

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from bunko import audit
        from bunko import auth as core_auth
        from bunko.runtime import Runtime

        rt = Runtime(settings)
        app.state.rt = rt
        core_auth.signing_key(settings)  # fail at start, not at the first login, if it is unusable
        core_auth.ensure_bootstrap_admin(rt)
        _ensure_default_collection(rt)
        stop = threading.Event()
        worker: threading.Thread | None = None
        if run_worker_thread:
            worker = _start_worker(rt, stop)
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                worker.join(timeout=30)
            audit.flush(rt)
            rt.close()

    app = FastAPI(
        title="Bunko", version="0.1.0", lifespan=lifespan,
        description="Questions over Japanese PDFs with page-level citations.",
        docs_url=None, redoc_url=None,  # their UIs load scripts from a CDN, which the CSP forbids
        responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 403: {"model": ErrorBody},
                   404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 429: {"model": ErrorBody}},
    )
    app.state.settings = settings
    app.state.rate_limit_window_s = RATE_LIMIT_WINDOW_S
    install_error_handlers(app)
    for router in (health.router, auth.router, users.router, collections.router,
                   documents.build_router(settings), query.router, openai_compat.router, audit.router):
        app.include_router(router)
    # The web page last: its routes (/ and /assets) must never shadow an API route.
    mount_web(app)
    if settings.cors_origins:  # off unless configured: the web page is same-origin
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"], max_age=600)
    upload_route = re.compile(r"^/api/v1/collections/[^/]+/documents/?$")
    app.add_middleware(BodyLimitMiddleware, default=DEFAULT_BODY_LIMIT,
                       limits=[("POST", upload_route, settings.max_upload_bytes + FORM_SLACK_BYTES)])
    app.add_middleware(RequestContextMiddleware, production=settings.mode == "production")
    if traced:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # /health, /ready and /metrics are probed every few seconds: not worth a trace each.
        FastAPIInstrumentor.instrument_app(app, excluded_urls="health,ready,metrics")
    return app


def _ensure_default_collection(rt: object) -> None:
    from bunko.collections import ensure_default_collection
    from bunko.runtime import Runtime

    assert isinstance(rt, Runtime)
    try:
        ensure_default_collection(rt)
    except Exception:  # a missing model must not keep the API (health, auth) from starting
        log.exception("could not create the default collection")


def _start_worker(rt: object, stop: threading.Event) -> threading.Thread:
    from bunko.ingest.collection_jobs import collection_handlers
    from bunko.ingest.pipeline import make_processor
    from bunko.ingest.worker import run_worker
    from bunko.runtime import Runtime

    assert isinstance(rt, Runtime)
    thread = threading.Thread(
        target=run_worker, args=(rt.settings, make_processor(rt)),
        kwargs={"handlers": collection_handlers(rt), "stop": stop, "worker_id": f"api-{os.getpid()}",
                "sessions": rt.sessions},
        name="bunko-worker", daemon=True,
    )
    thread.start()
    return thread

"""Liveness, readiness (every dependency reported) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, text

from bunko import metrics
from bunko.api.deps import RuntimeDep
from bunko.runtime import Runtime
from bunko.store.db import Collection, Job

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_S = 5.0


def _check_database(rt: Runtime) -> str:
    with rt.sessions() as s:
        s.execute(text("SELECT 1"))
    return rt.db_url.split(":", 1)[0].split("+", 1)[0]


def _check_vectors(rt: Runtime) -> str:
    rt.vectors.has("bunko_ready_probe")
    return "milvus" if rt.settings.milvus_uri.startswith("http") else "milvus-lite"


def _check_objects(rt: Runtime) -> str:
    rt.objects.ping()
    return rt.settings.resolved_object_store_url.split(":", 1)[0]


def _check_cache(rt: Runtime) -> str:
    rt.cache.ping()
    return "redis" if rt.settings.cache_url.startswith(("redis", "rediss", "unix")) else "memory"


def _http_reachable(url: str) -> str:
    # Any HTTP answer below 500 proves the server is up; the path need not exist.
    r = httpx.get(url, timeout=CHECK_TIMEOUT_S)
    if r.status_code >= 500:
        raise RuntimeError(f"HTTP {r.status_code}")
    return "http"


def _check_models(rt: Runtime) -> str:
    if rt.settings.model_endpoint:
        return _http_reachable(rt.settings.model_endpoint.rstrip("/") + "/")
    return "in-process"


def _check_llm(rt: Runtime) -> str:
    if not rt.settings.llm_url:
        return "none (extractive answers)"
    return _http_reachable(rt.settings.llm_url.rstrip("/") + "/models")


CHECKS: dict[str, Callable[[Runtime], str]] = {
    "database": _check_database,
    "vectors": _check_vectors,
    "objects": _check_objects,
    "cache": _check_cache,
    "models": _check_models,
    "llm": _check_llm,
}


async def _run(name: str, check: Callable[[Runtime], str], rt: Runtime) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        backend = await asyncio.wait_for(run_in_threadpool(check, rt), CHECK_TIMEOUT_S + 1)
        return {"status": "ok", "backend": backend,
                "latency_ms": round((time.perf_counter() - start) * 1000, 1)}
    except TimeoutError:
        return {"status": "down", "error": f"no answer within {CHECK_TIMEOUT_S:.0f} s"}
    except Exception as exc:  # report, never raise: readiness must describe every failure
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        return {"status": "down", "error": str(message)[:300]}


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "a dependency is down"}})
async def ready(rt: RuntimeDep) -> JSONResponse:
    results = await asyncio.gather(*(_run(n, c, rt) for n, c in CHECKS.items()))
    checks = dict(zip(CHECKS, results, strict=True))
    ok = all(c["status"] == "ok" for c in checks.values())
    return JSONResponse({"status": "ready" if ok else "not_ready", "checks": checks},
                        status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response)
def prometheus_metrics(rt: RuntimeDep) -> Response:
    _refresh_gauges(rt)
    body, content_type = metrics.render_latest()
    return Response(body, media_type=content_type)


def _refresh_gauges(rt: Runtime) -> None:
    """Queue depth and collection sizes are read at scrape time; a store error leaves them stale.
    Collection sizes are what Milvus holds (one count query per collection), so a vector store
    that lost or kept entities the database does not know about shows here."""
    try:
        with rt.sessions() as s:
            for status, n in s.execute(select(Job.status, func.count()).group_by(Job.status)).all():
                metrics.bunko_queue_depth.labels(status=status).set(n)
            colls = s.execute(select(Collection.name, Collection.vector_collection)).all()
        for name, vname in colls:
            n = rt.vectors.count(vname) if rt.vectors.has(vname) else 0
            metrics.milvus_collection_size.labels(collection=name).set(n)
    except Exception:
        return

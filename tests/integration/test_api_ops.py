"""Operations: /health, /ready (each dependency, 503 when one is down), /metrics with the seed's
names, request ids in headers and JSON logs, security headers, CORS, and the one error shape with
no trace or secret in a 500."""

from __future__ import annotations

import json

import pytest

from bunko.testing.servers import free_port
from tests.support.api import KINDS, open_api

SEED_METRICS = ["http_requests_total", "http_request_duration_seconds", "rag_queries_total",
                "rag_query_duration_seconds", "ocr_duration_seconds", "embedding_duration_seconds",
                "milvus_collection_size", "bunko_queue_depth", "bunko_cache_hits_total",
                "bunko_cache_misses_total"]


@pytest.fixture(scope="module", params=KINDS)
def api(request, tmp_path_factory):
    with open_api(request, tmp_path_factory, request.param) as api:
        api.add_role_users()
        yield api


def test_health_and_ready_report_every_dependency(api):
    assert api.client.get("/health").json() == {"status": "ok"}
    r = api.client.get("/ready")
    assert r.status_code == 200, r.text
    checks = r.json()["checks"]
    assert set(checks) == {"database", "vectors", "objects", "cache", "models", "llm"}
    assert all(c["status"] == "ok" for c in checks.values())
    expected = {"embedded": ("sqlite", "file", "memory"), "cluster": ("postgresql", "s3", "redis")}
    kind = "cluster" if api.settings.database_url else "embedded"
    assert (checks["database"]["backend"], checks["objects"]["backend"],
            checks["cache"]["backend"]) == expected[kind]


def test_ready_is_503_and_names_the_dependency_that_is_down(request, tmp_path_factory):
    dead = free_port()
    with open_api(request, tmp_path_factory, "embedded") as api:
        # Re-point the cache at a port where nothing listens (the app started on the in-process one).
        from bunko.store.cache import open_cache

        api.rt.__dict__["cache"] = open_cache(api.settings.model_copy(
            update={"cache_url": f"redis://127.0.0.1:{dead}/0"}))
        r = api.client.get("/ready")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "not_ready"
        assert body["checks"]["cache"]["status"] == "down" and body["checks"]["cache"]["error"]
        assert body["checks"]["database"]["status"] == "ok"
        assert api.client.get("/health").status_code == 200  # liveness does not depend on stores


def test_metrics_expose_the_seed_names(api):
    api.client.get("/api/v1/auth/me", headers=api.users["viewer"].headers)
    text = api.client.get("/metrics").text
    for name in SEED_METRICS:
        assert f"# TYPE {name} " in text, name
    assert 'http_requests_total{method="GET",route="/api/v1/auth/me",status="200"}' in text
    # Route templates, never raw paths: ids do not create new series.
    api.client.get("/api/v1/documents/some-id-123", headers=api.users["viewer"].headers)
    assert "some-id-123" not in api.client.get("/metrics").text


def test_milvus_collection_size_is_what_the_vector_store_holds(api):
    """The gauge counts Milvus's entities, not database rows: vectors the database does not know
    about (or rows whose vectors were lost) show here."""
    import numpy as np
    from prometheus_client.parser import text_string_to_metric_families

    from bunko.collections import get_collection
    from bunko.store.vectors import VectorRow

    coll = get_collection(api.rt, "default")
    dim = api.rt.embedder.dim
    stray = [VectorRow(chunk_id=f"stray-metric-{i}", document_id="stray-metric", collection_id=coll.id,
                       page_no=1, chunk_index=i, text="迷子のベクトル", tokens="迷子 ベクトル",
                       dense=np.ones(dim, dtype=np.float32) / np.sqrt(dim)) for i in range(3)]
    before = api.rt.vectors.count(coll.vector_collection)
    api.rt.vectors.upsert(coll.vector_collection, stray)
    try:
        sizes = {s.labels["collection"]: s.value
                 for family in text_string_to_metric_families(api.client.get("/metrics").text)
                 for s in family.samples if s.name == "milvus_collection_size"}
        assert sizes["default"] == before + 3
    finally:
        api.rt.vectors.delete_document(coll.vector_collection, "stray-metric")


def _rag_queries(api) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.labels["mode"], s.labels["cached"]): s.value
            for family in text_string_to_metric_families(api.client.get("/metrics").text)
            for s in family.samples if s.name == "rag_queries_total"}


def test_rag_queries_total_counts_each_answered_query_once(api):
    """One per answer delivered, cache hits included (labelled cached="true"), whichever route
    asked; a refused question is not counted."""
    headers = api.users["viewer"].headers
    question = f"メトリクスの試験 {api.settings.data_dir.name}"  # unique per fixture: a cold cache
    before = _rag_queries(api)

    def delta() -> dict[tuple[str, str], float]:
        now = _rag_queries(api)
        return {k: v - before.get(k, 0.0) for k, v in now.items() if v != before.get(k, 0.0)}

    assert api.client.post("/api/v1/query", headers=headers, json={"question": question}).status_code == 200
    assert delta() == {("not_found", "false"): 1.0}  # no documents in this module: nothing found
    assert api.client.post("/api/v1/query", headers=headers, json={"question": question}).json()["cached"]
    assert delta() == {("not_found", "false"): 1.0, ("not_found", "true"): 1.0}
    with api.client.stream("POST", "/api/v1/query/stream", headers=headers,
                           json={"question": question, "use_cache": False}) as r:
        assert r.status_code == 200 and "event: done" in r.read().decode()
    assert delta() == {("not_found", "false"): 2.0, ("not_found", "true"): 1.0}
    assert api.client.post("/api/v1/query", headers=headers, json={"question": "あ" * 501}).status_code == 422
    assert sum(delta().values()) == 3.0


def test_request_id_security_headers_and_json_logs(api, capfd):
    r = api.client.get("/health", headers={"X-Request-ID": "trace-abc.123"})
    assert r.headers["x-request-id"] == "trace-abc.123"
    bad = api.client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert bad.headers["x-request-id"] != "bad id\twith spaces" and len(bad.headers["x-request-id"]) == 32
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert "access-control-allow-origin" not in api.client.get(
        "/health", headers={"Origin": "https://evil.example"}).headers
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    mine = [entry for entry in lines if entry.get("request_id") == "trace-abc.123"]
    assert mine and mine[0]["path"] == "/health" and mine[0]["status"] == 200


def test_cors_only_for_configured_origins(request, tmp_path_factory):
    with open_api(request, tmp_path_factory, "embedded", cors_origins=["https://ui.example"]) as api:
        ok = api.client.options("/api/v1/auth/login", headers={
            "Origin": "https://ui.example", "Access-Control-Request-Method": "POST"})
        assert ok.headers["access-control-allow-origin"] == "https://ui.example"
        other = api.client.options("/api/v1/auth/login", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in other.headers


def test_unexpected_errors_are_500_without_trace_or_secret(api):
    def explode():
        raise RuntimeError("db password is hunter2-secret")

    api.app.add_api_route("/boom-test", explode)
    r = api.client.get("/boom-test", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal_error",
                                  "message": "internal error; report the request id to the operator",
                                  "detail": {"request_id": "boom-1"}}}
    assert "hunter2" not in r.text and "Traceback" not in r.text


def test_framework_errors_use_the_error_shape(api):
    for r in (api.client.get("/no-such-route"), api.client.delete("/health"),
              api.client.post("/api/v1/auth/login", content=b"{not json",
                              headers={"Content-Type": "application/json"}),
              api.client.post("/api/v1/auth/login", content=b"x" * (2 << 20))):
        assert r.status_code in (404, 405, 413, 422), r.status_code
        assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"code", "message", "detail"}


def test_validation_errors_do_not_echo_passwords(api):
    r = api.client.post("/api/v1/auth/login", json={"username": "", "password": "p4ss-secret-x"})
    assert r.status_code == 422 and "p4ss-secret-x" not in r.text


def test_core_5xx_errors_do_not_leak_their_message(api):
    from bunko.errors import OcrFailed, StoreUnavailable

    def core_failure():
        raise OcrFailed("Traceback (most recent call last): File /srv/secret/path.py")

    def store_down():
        raise StoreUnavailable("the object store is unreachable; retry later")

    api.app.add_api_route("/core-failure-test", core_failure)
    api.app.add_api_route("/store-down-test", store_down)
    r = api.client.get("/core-failure-test")
    assert r.status_code == 500 and r.json()["error"]["code"] == "ocr_failed"
    assert "Traceback" not in r.text and "/srv/secret" not in r.text
    down = api.client.get("/store-down-test")
    assert down.status_code == 503
    assert down.json()["error"]["message"] == "the object store is unreachable; retry later"


def test_database_outage_is_a_503_with_retry_after_not_a_500(request, tmp_path_factory):
    """The e2e run found PostgreSQL restarts surfacing as 500 internal_error: a connection refused
    by the database must reach the client as a retryable 503 in the one error shape."""
    from sqlalchemy import create_engine

    dead = free_port()
    with open_api(request, tmp_path_factory, "embedded") as api:
        headers = api.add_user("ops-admin", "admin").headers
        assert api.client.get("/api/v1/collections", headers=headers).status_code == 200
        api.rt.sessions.configure(bind=create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{dead}/gone", connect_args={"connect_timeout": 2}))
        r = api.client.get("/api/v1/collections", headers=headers)
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "5"
        assert r.json()["error"]["code"] == "store_unavailable"
        assert "Traceback" not in r.text and "psycopg" not in r.text

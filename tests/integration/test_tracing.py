"""One trace per request across real processes: the api (`bunko serve`) and a worker (`bunko worker`)
export over OTLP/HTTP to a receiver this test runs, and the spans decoded with the official
opentelemetry-proto messages show the upload's trace continuing in the worker's job (through the
job row's traceparent) with a span per ingest stage, and the query's trace with its search stages.
Off by default: without the OTEL_* variables no SDK is even imported."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bunko.samples import make_born_digital
from tests.support.api_worker import Stack, api_and_worker
from tests.support.otlp import OtlpReceiver, Span

pytestmark = [pytest.mark.postgres, pytest.mark.s3, pytest.mark.slow]


def _ancestors(span: Span, by_id: dict[str, Span]) -> list[Span]:
    out = []
    while span.parent_id and span.parent_id in by_id:
        span = by_id[span.parent_id]
        out.append(span)
    return out


def _upload_and_ask(stack: Stack, receiver: OtlpReceiver, tmp_path: Path) -> tuple[str, list[Span]]:
    base = stack.base
    headers = stack.admin_headers(stack.client())
    pdf = make_born_digital(tmp_path / "report.pdf")
    up = httpx.post(f"{base}/api/v1/collections/default/documents", headers=headers, timeout=60,
                    files={"file": (pdf.name, pdf.read_bytes(), "application/pdf")})
    assert up.status_code == 201, up.text
    doc_id = up.json()["id"]
    stack.wait(lambda: httpx.get(f"{base}/api/v1/documents/{doc_id}", headers=headers,
                                 timeout=10).json()["status"] == "completed", 300, "the document")
    answer = httpx.post(f"{base}/api/v1/query", headers=headers, timeout=120,
                        json={"question": "売上高はいくらですか", "collection": "default"})
    assert answer.status_code == 200, answer.text

    def spans_named(*names: str) -> list[Span]:
        spans = receiver.snapshot()
        return spans if all(any(s.name == n for s in spans) for n in names) else []

    stack.wait(lambda: spans_named("ingest", "thumbnail", "vector_search"), 60, "the exported spans")
    time.sleep(1)  # the rest of the batch
    return doc_id, receiver.snapshot()


def test_an_upload_and_a_query_are_each_one_trace_across_the_api_and_the_worker(
    tmp_path, s3_server, redis_url, milvus_server
):
    receiver = OtlpReceiver()
    try:
        with api_and_worker(tmp_path, s3_server, redis_url, milvus_server, db="bunko_tracing",
                            extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
                                       "OTEL_BSP_SCHEDULE_DELAY": "200"}) as stack:
            doc_id, spans = _upload_and_ask(stack, receiver, tmp_path)
    finally:
        receiver.close()

    by_id = {s.span_id: s for s in spans}
    # The upload: the api's server span, and the worker's job in the same trace, below it.
    (upload,) = [s for s in spans if s.service == "bunko-api" and s.name.startswith("POST /api/v1/collections/")
                 and s.kind == 2]  # SERVER
    (ingest,) = [s for s in spans if s.name == "ingest"]
    assert ingest.service == "bunko-worker" and ingest.trace_id == upload.trace_id
    assert upload in _ancestors(ingest, by_id)
    assert ingest.attributes["bunko.document_id"] == doc_id
    stages = {s.name: s for s in spans if s.parent_id == ingest.span_id}
    assert {"extract", "chunk", "embed", "index", "thumbnail"} <= set(stages)
    assert all(s.service == "bunko-worker" for s in stages.values())
    # SQL through the SQLAlchemy instrumentation, in both processes of that trace.
    sql = [s for s in spans if s.trace_id == upload.trace_id and s.attributes.get("db.system") == "postgresql"]
    assert {s.service for s in sql} == {"bunko-api", "bunko-worker"}
    # S3 (SeaweedFS): the api stores the upload, the worker reads it back, as CLIENT spans.
    s3 = {(s.service, s.name) for s in spans if s.trace_id == upload.trace_id and s.kind == 3}
    assert {("bunko-api", "S3 put"), ("bunko-worker", "S3 get")} <= s3
    # Milvus over gRPC: the worker's writes in the upload's trace, the search in the query's.
    milvus = [s for s in spans if s.attributes.get("rpc.system") == "grpc"
              and str(s.attributes.get("rpc.service", "")).startswith("milvus.")]
    assert any(s.trace_id == upload.trace_id and s.service == "bunko-worker" for s in milvus)
    # The query: its own trace, with the search stages under the api's server span.
    (query,) = [s for s in spans if s.name == "POST /api/v1/query" and s.kind == 2]
    assert query.trace_id != upload.trace_id
    for name in ("embed", "vector_search"):
        (stage,) = [s for s in spans if s.name == name and s.trace_id == query.trace_id]
        assert query in _ancestors(stage, by_id)
    (search,) = [s for s in spans if s.name == "vector_search" and s.trace_id == query.trace_id]
    assert any(search in _ancestors(s, by_id) and s.attributes.get("rpc.method") in ("Search", "HybridSearch")
               for s in milvus)


def test_tracing_is_off_and_costs_no_sdk_without_the_otel_variables():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    code = ("import sys\nfrom bunko import tracing\nfrom bunko.api.main import create_app\n"
            "create_app()\nprint(tracing.configure('x'), 'opentelemetry.sdk' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env={**env, "BUNKO_DATA_DIR": "/tmp/bunko-otel-off"},
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-2:] == ["False", "False"], out.stdout + out.stderr

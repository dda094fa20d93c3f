"""The pure parts of the end-to-end harness: the summary's verdict and the emulator's printing."""

from __future__ import annotations

import datetime

import pytest

from tests.e2e.kmock_server import _merged, _strip_schema, human_age, jsonpath
from tests.e2e.summary import Report, percentile

PIPELINE = {
    "metadata": {"name": "bunko-cpu", "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"gpuProfile": {"name": "cpu-only"}},
    "status": {"phase": "Ready", "conditions": [{"type": "Planned", "status": "True"},
                                                {"type": "Ready", "status": "False"}]},
}


@pytest.mark.parametrize(("path", "expected"), [
    (".status.phase", ["Ready"]),
    ('.status.conditions[?(@.type=="Ready")].status', ["False"]),
    (".status.conditions[0].type", ["Planned"]),
    (".spec.llm.model", []),
    (".status.conditions[*].type", ["Planned", "Ready"]),
])
def test_printer_column_paths_resolve_like_kubectl(path, expected):
    assert jsonpath(PIPELINE, path) == expected


def test_dates_print_as_ages():
    now = datetime.datetime(2026, 1, 1, 0, 7, 30, tzinfo=datetime.UTC)
    assert human_age("2026-01-01T00:00:00Z", now) == "7m30s"
    assert human_age("2026-01-01T00:00:00Z", now + datetime.timedelta(hours=3)) == "3h"
    assert human_age("2026-01-01T00:07:00Z", now) == "30s"


def test_crd_schema_drops_kubernetes_extensions_and_allows_int_or_string():
    schema = {"type": "object", "x-kubernetes-validations": [{"rule": "true"}],
              "properties": {"port": {"type": "string", "x-kubernetes-int-or-string": True}}}
    out = _strip_schema(schema)
    assert "x-kubernetes-validations" not in out
    assert out["properties"]["port"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}


def test_merge_patch_deletes_nulls_and_merges_maps():
    assert _merged({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"c": None, "e": 3}, "d": None}) == {"a": {"b": 1, "e": 3}}


def test_percentiles_interpolate():
    assert percentile([], 95) == 0.0
    assert percentile([5.0], 50) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(101)), 95) == 95


@pytest.mark.parametrize("field", ["documents_lost", "duplicate_chunks", "unexpected_5xx", "load_5xx"])
def test_any_must_be_zero_figure_fails_the_run(field):
    report = Report()
    assert not report.failed
    setattr(report, field, 1)
    assert report.failed
    assert "RESULT: FAIL" in report.render()


def test_a_failed_check_fails_the_run_and_is_listed():
    report = Report()
    report.check("kept", True)
    assert not report.failed and "RESULT: PASS" in report.render()
    report.check("queue drains", False, "3 pending")
    text = report.render()
    assert report.failed and "queue drains: 3 pending" in text and "checks passed" in text

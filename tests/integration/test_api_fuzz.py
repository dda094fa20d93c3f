"""Property-based fuzzing of the OpenAPI schema (schemathesis): every operation, authenticated as
an admin (who may call every route, so requests get past the permission checks into the handlers),
must never answer 5xx. Bounded to FUZZ_EXAMPLES cases per operation so the run stays under 2 min;
the number of cases run is printed at the end (``-s`` shows it)."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.support.api import make_pdf, open_api

FUZZ_EXAMPLES = 12
CASES: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def fuzz_api(request, tmp_path_factory):
    with open_api(request, tmp_path_factory, "embedded", rate_limit_per_minute=1_000_000) as api:
        admin = api.add_user("fuzz-admin", "admin")
        pdf = make_pdf(tmp_path_factory.mktemp("fuzz") / "seed.pdf", "ファズ試験の文書です。")
        assert api.upload(admin, pdf).status_code == 201
        api.fuzz_headers = admin.headers
        yield api


def _operations(app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    # Logout revokes the token every other case uses: fuzz it last.
    return sorted(operations, key=lambda op: op.path == "/api/v1/auth/logout")


def test_no_server_errors(fuzz_api):
    """The pytest plugin of schemathesis 4.32 does not run under pytest 9.2 (``_nodeid``), so each
    operation's Hypothesis strategy is driven here directly."""
    failures = []
    for operation in _operations(fuzz_api.app):

        @given(case=operation.as_strategy())
        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            response = case.call(headers=fuzz_api.fuzz_headers)
            CASES[f"{case.method} {case.path}"] += 1
            STATUSES[response.status_code] += 1
            if response.status_code >= 500:
                failures.append((case.method, case.formatted_path, case.body, response.text[:300]))
            case.validate_response(response, checks=[not_a_server_error])

        try:
            run()
        except Exception as exc:  # keep fuzzing the other operations; report them all
            failures.append((operation.method, operation.path, repr(exc)[:500]))
    total = sum(CASES.values())
    print(f"\nschemathesis: {total} cases over {len(CASES)} operations; "
          f"statuses {dict(sorted(STATUSES.items()))}")
    assert not failures, failures
    assert len(CASES) > 15 and total >= 5 * len(CASES)

#!/usr/bin/env bash
# `make e2e`: the whole system, each part its own process on 127.0.0.1 (PostgreSQL, Redis,
# SeaweedFS, Milvus Lite, Ray + the Bunko Serve apps, the api with 2 workers, 2 ingestion workers,
# the kmock Kubernetes API with the operator), driven as users drive it, with faults injected.
# pytest runs tests/e2e/test_system.py, a test per phase; it prints a summary table, and a phase
# fails if a document is lost, a chunk duplicated, a 5xx unexpected, or any of its checks fails.
# About 10-15 minutes on 2 cores.
#
#   scripts/e2e.sh                                    # the full run (50 users for 60 s, >= 10 worker kills)
#   E2E_ARGS="--load-seconds 30" scripts/e2e.sh       # shorter load phase (tests/e2e/scenario.py parse_args)
#
# The run directory is under pytest's temp folder (the last three runs are kept); the last line names its logs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
[[ -x "$PY" ]] || { echo "no .venv here: run 'make setup' first" >&2; exit 2; }
[[ -x "$ROOT/.tools/bin/kubectl" ]] || "$ROOT/scripts/fetch-k8s-tools.sh"
for bin in redis-server; do
  command -v "$bin" >/dev/null || { echo "$bin is missing: run 'make system-deps'" >&2; exit 2; }
done
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
  || { echo "PostgreSQL server binaries are missing: run 'make system-deps'" >&2; exit 2; }

# -s: the phases narrate as they go; the summary table is printed at the end.
exec "$ROOT/.venv/bin/pytest" -p no:cacheprovider -s -m e2e tests/e2e/test_system.py --e2e-args="${E2E_ARGS:-}" "$@"

#!/usr/bin/env bash
# `make e2e`: the whole system, each part its own process on 127.0.0.1 (PostgreSQL, Redis,
# SeaweedFS, Milvus Lite, Ray + the Bunko Serve apps, the api with 2 workers, 2 ingestion workers,
# the kmock Kubernetes API with the operator), driven as users drive it, with faults injected.
# Prints a summary table; exits non-zero if a document is lost, a chunk duplicated, a 5xx
# unexpected, or any check fails. About 10-15 minutes on 2 cores.
#
#   scripts/e2e.sh                      # the full run (50 users for 60 s, >= 10 worker kills)
#   scripts/e2e.sh --load-seconds 30    # shorter load phase; --help for every option
#   scripts/e2e.sh --keep               # keep the run directory (logs, data) even on success
#
# A failed run keeps its directory; the last line names its logs.
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

# `python -m` from the repository root: the test helpers import as `tests.e2e.*`.
exec "$PY" -m tests.e2e.scenario "$@"

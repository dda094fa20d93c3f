#!/usr/bin/env bash
# A Milvus gRPC server with Milvus's C++ engine, on loopback, for benchmarks and server-path tests.
#
# The embedded default, milvus-lite 3.x, is a pure-Python engine: every search walks every row in
# Python (dedup and delete masks), and BM25 scores postings in a Python loop, so its latency grows
# linearly with the collection (measured at 100k chunks: ~75 ms dense, ~300–700 ms BM25). A Milvus
# server (the chart's Milvus) runs the C++ segcore/knowhere engine. milvus-lite 2.5.1 is that C++
# engine built as one `milvus` binary; this script installs it into .venv-milvus/ (the binary and
# its libraries only: --no-deps, nothing from it is imported) and runs it on an address, where
# pymilvus talks to it exactly as to a Milvus server (`uri=http://HOST:PORT`).
#
# Usage:
#   scripts/milvus-server.sh build                    # create .venv-milvus/ (idempotent, ~180 MB)
#   scripts/milvus-server.sh run DATA_FILE HOST:PORT  # exec the server in the foreground
#
# bunko.testing.servers.milvus_server() does the run part for Python callers (bench/query.py).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BUNKO_MILVUS_ENGINE_DIR:-$ROOT/.venv-milvus}"
PIN="milvus-lite==2.5.1"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then
    PYTHON="$("$ROOT/.venv/bin/python" -c 'import sys; print(sys._base_executable)')"
  else
    PYTHON="$(command -v python3.11 || command -v python3)"
  fi
fi

lib_dir() {
  "$VENV/bin/python" -P -c 'import importlib.util, pathlib; s = importlib.util.find_spec("milvus_lite"); print(pathlib.Path(s.origin).parent / "lib")'
}

build() {
  local marker="$VENV/.bunko-milvus"
  if [[ -f "$marker" && "$(cat "$marker")" == "$PIN" ]]; then
    echo "milvus-server: $VENV is up to date ($PIN)"
    return 0
  fi
  echo "milvus-server: installing $PIN into $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  echo '*' > "$VENV/.gitignore"
  "$VENV/bin/pip" install --quiet --no-deps "$PIN"
  local lib
  lib="$(lib_dir)"
  [[ -x "$lib/milvus" ]] || { echo "milvus-server: no milvus binary in $lib" >&2; exit 1; }
  echo "$PIN" > "$marker"
}

run() {
  local data_file="${1:?usage: milvus-server.sh run DATA_FILE HOST:PORT}"
  local address="${2:?usage: milvus-server.sh run DATA_FILE HOST:PORT}"
  [[ -f "$VENV/.bunko-milvus" ]] || { echo "milvus-server: $VENV is missing; run: scripts/milvus-server.sh build" >&2; exit 2; }
  local lib
  lib="$(lib_dir)"
  mkdir -p "$(dirname "$data_file")"
  cd "$(dirname "$data_file")"
  LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$lib/milvus" "$data_file" "$address" "${LOG_LEVEL:-ERROR}"
}

case "${1:-}" in
  build) build ;;
  run) shift; run "$@" ;;
  *) echo "usage: scripts/milvus-server.sh build | run DATA_FILE HOST:PORT" >&2; exit 2 ;;
esac

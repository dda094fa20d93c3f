#!/usr/bin/env bash
# crds/ is the source of the CRDs; the chart ships copies in charts/bunko/crds/ (Helm installs them
# before any template). Copies, not symlinks: `helm package` does not keep symlinks.
# --check: fail if the copies differ from the source.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/crds"
DST="$ROOT/charts/bunko/crds"
mkdir -p "$DST"
if [[ "${1:-}" == "--check" ]]; then
  diff -r --exclude=examples --exclude='*.py' --exclude=__pycache__ "$SRC" "$DST" >/dev/null 2>&1 || {
    echo "charts/bunko/crds/ differs from crds/: run scripts/sync-chart-crds.sh" >&2; exit 1; }
  echo "chart CRDs in sync"
  exit 0
fi
find "$DST" -maxdepth 1 -name '*.yaml' -delete
for f in "$SRC"/*.yaml; do
  [[ -e "$f" ]] || continue
  cp "$f" "$DST/"
done
echo "synced $(ls "$DST" | wc -l) CRD file(s) into charts/bunko/crds/"

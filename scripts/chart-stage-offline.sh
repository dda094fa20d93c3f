#!/usr/bin/env bash
# Copy charts/bunko to DEST (so that lint and render never write into the repository) and check
# that every dependency is there: the store charts live in charts/bunko/charts/ as folders, Milvus
# and the KubeRay operator as the upstream archives scripts/chart-deps.sh vendored.
# Usage: scripts/chart-stage-offline.sh DEST   (prints the staged chart's path)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM="${HELM:-$ROOT/.tools/bin/helm}"
DEST="${1:?usage: $0 DEST}"
[[ -x "$HELM" ]] || { echo "helm not found at $HELM: run scripts/fetch-k8s-tools.sh" >&2; exit 1; }

rm -rf "$DEST/bunko"
mkdir -p "$DEST"
cp -r "$ROOT/charts/bunko" "$DEST/bunko"
missing="$("$HELM" dependency list "$DEST/bunko" | awk 'NR > 1 && NF && $NF != "ok" && $NF != "unpacked" {print $1 " " $2 " (" $NF ")"}')"
if [[ -n "$missing" ]]; then
  echo "charts/bunko: dependencies not vendored: $missing; run scripts/chart-deps.sh" >&2
  exit 1
fi
echo "$DEST/bunko"

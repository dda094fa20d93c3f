#!/usr/bin/env bash
# Copy charts/bunko to DEST and put an empty placeholder chart in DEST/charts/ for each dependency
# whose archive is absent (Milvus and the KubeRay operator come from remote repositories, which
# `helm dependency build` cannot reach offline). Helm refuses to render a chart with a declared
# dependency missing, even a disabled one; a placeholder has the right name and version and no
# templates, so it renders nothing: the staged chart renders everything Bunko's own templates and
# the vendored store charts make. Where `scripts/chart-deps.sh` fetched the real archives, they are
# used as they are and no placeholder is made.
# Usage: scripts/chart-stage-offline.sh DEST   (prints the staged chart's path)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM="${HELM:-$ROOT/.tools/bin/helm}"
DEST="${1:?usage: $0 DEST}"
[[ -x "$HELM" ]] || { echo "helm not found at $HELM: run scripts/fetch-k8s-tools.sh" >&2; exit 1; }

rm -rf "$DEST/bunko"
mkdir -p "$DEST"
cp -r "$ROOT/charts/bunko" "$DEST/bunko"
"$HELM" dependency list "$DEST/bunko" | awk 'NR > 1 && $NF == "missing" {print $1, $2}' |
  while read -r name version; do
    mkdir -p "$DEST/bunko/charts/$name/templates"
    echo "# placeholder: no values" > "$DEST/bunko/charts/$name/values.yaml"
    cat > "$DEST/bunko/charts/$name/Chart.yaml" <<YAML
apiVersion: v2
name: $name
version: $version
description: Offline placeholder for $name $version (renders nothing); run scripts/chart-deps.sh online for the real chart.
YAML
    echo "placeholder: $name $version" >&2
  done
echo "$DEST/bunko"

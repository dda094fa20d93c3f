#!/usr/bin/env bash
# make chart-lint: CRDs as the typed specs generate them, Chart.lock in sync, then `helm lint --strict` and
# `helm template` for the default values and each hardware overlay, offline, with the vendored subcharts
# (scripts/chart-stage-offline.sh checks none is missing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM="$ROOT/.tools/bin/helm"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$HELM" ]] || { echo "helm not found at $HELM: run scripts/fetch-k8s-tools.sh" >&2; exit 1; }
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
export HELM_CACHE_HOME="$SCRATCH/helm/cache" HELM_CONFIG_HOME="$SCRATCH/helm/config" HELM_DATA_HOME="$SCRATCH/helm/data"

# -P: the repository root holds a folder named operator, which would shadow the standard library.
"$PY" -P -m bunko.operator.kinds.crd --check "$ROOT/crds" "$ROOT/charts/bunko/crds" --values-schema "$ROOT/charts/bunko/values.schema.json"
"$PY" "$ROOT/scripts/chart-lock.py" --check
CHART="$("$ROOT/scripts/chart-stage-offline.sh" "$SCRATCH/stage")"
"$HELM" lint --strict --with-subcharts "$CHART"
for overlay in values.yaml values-rtx4090.yaml values-multigpu.yaml values-cpu.yaml; do
  "$PY" "$ROOT/scripts/chart-subchart-keys.py" "$CHART" "$CHART/$overlay"
  "$HELM" lint --strict "$CHART" -f "$CHART/$overlay"
  "$HELM" template bunko "$CHART" -n bunko -f "$CHART/$overlay" > "$SCRATCH/$overlay.rendered.yaml"
  echo "$overlay: $(grep -c '^kind:' "$SCRATCH/$overlay.rendered.yaml") objects rendered"
done

#!/usr/bin/env bash
# Vendor the two upstream subcharts into charts/bunko/charts/ at the versions Chart.yaml pins
# (Milvus 5.0.19 from zilliztech/milvus-helm, the KubeRay operator 1.7.0 from ray-project/kuberay).
# The archives are committed, so the chart installs, lints and renders with no network; run this
# only to move a pin (edit Chart.yaml, run scripts/chart-lock.py, then this).
#
#   scripts/chart-deps.sh                      # online: helm pull the published archives
#   scripts/chart-deps.sh --from-source MILVUS_HELM_GIT KUBERAY_GIT
#                                              # package from clones of the two repositories, at
#                                              # their release tags (milvus-<v>, v<v>); how the
#                                              # committed archives were made, the chart
#                                              # repositories being unreachable from the build host
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM="${HELM:-$ROOT/.tools/bin/helm}"
CHARTS="$ROOT/charts/bunko/charts"
version() { awk -v n="$1" '$0 ~ "- name: "n"$" {f=1} f && /version:/ {print $2; exit}' "$ROOT/charts/bunko/Chart.yaml"; }
MILVUS="$(version milvus)"; KUBERAY="$(version kuberay-operator)"
rm -f "$CHARTS"/milvus-*.tgz "$CHARTS"/kuberay-operator-*.tgz
if [[ "${1:-}" == "--from-source" ]]; then
  milvus_git="${2:?MILVUS_HELM_GIT}"; kuberay_git="${3:?KUBERAY_GIT}"
  work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
  git -C "$milvus_git" archive "milvus-$MILVUS" charts/milvus | tar -x -C "$work"
  git -C "$kuberay_git" archive "v$KUBERAY" helm-chart/kuberay-operator | tar -x -C "$work"
  "$HELM" package "$work/charts/milvus" -d "$CHARTS"
  "$HELM" package "$work/helm-chart/kuberay-operator" -d "$CHARTS"
else
  "$HELM" pull milvus --repo https://zilliztech.github.io/milvus-helm/ --version "$MILVUS" -d "$CHARTS"
  "$HELM" pull kuberay-operator --repo https://ray-project.github.io/kuberay-helm/ --version "$KUBERAY" -d "$CHARTS"
fi
"$HELM" dependency list "$ROOT/charts/bunko"

#!/usr/bin/env bash
# Fetch the remote subcharts (Milvus, KubeRay operator) into charts/bunko/charts/ as pinned by
# Chart.lock. Needs network access to the two chart repositories; the vendored store charts need
# nothing. After this, `helm install bunko charts/bunko` installs everything.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM="${HELM:-$ROOT/.tools/bin/helm}"
"$HELM" repo add zilliztech https://zilliztech.github.io/milvus-helm/ --force-update >/dev/null
"$HELM" repo add kuberay https://ray-project.github.io/kuberay-helm/ --force-update >/dev/null
"$HELM" dependency build "$ROOT/charts/bunko"

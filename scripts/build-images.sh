#!/usr/bin/env bash
# make images: build bunko-{operator,api,worker,serving}:<version> from images/Dockerfile with
# podman (or docker), then print each image's size.
#   IMAGE_BASES=upstream  FROM python:3.11-slim, node:22 and rayproject/ray (a registry is needed)
#   IMAGE_BASES=local     FROM a Debian base made here by debootstrap (images/make-base.sh), the page
#                         as `make web` built it, Ray from the lock; torch from a local file index.
#   (default: upstream where the Python image can be pulled, else local)
# Usage: scripts/build-images.sh [PROCESS ...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ENGINE="${ENGINE:-$(command -v podman || command -v docker || true)}"
[[ -n "$ENGINE" ]] || { echo "neither podman nor docker is installed (apt-get install -y podman)" >&2; exit 1; }
VERSION="$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("bunko"))')"
PROCESSES=("${@:-operator api worker serving}")
read -r -a PROCESSES <<< "${PROCESSES[*]}"
args=(--build-arg "VERSION=$VERSION")
volumes=()
if [[ -z "${IMAGE_BASES:-}" ]]; then
  if timeout 60 "$ENGINE" pull -q python:3.11.14-slim-bookworm >/dev/null 2>&1; then IMAGE_BASES=upstream; else IMAGE_BASES=local; fi
fi
if [[ "$IMAGE_BASES" == local ]]; then
  images/make-base.sh "$(basename "$ENGINE")"
  idx=/var/tmp/bunko-torch-index
  mkdir -p "$idx/torch"
  # The CPU build of torch, as a file index the build reads (pip finds it where the host's pip does).
  ls "$idx"/torch/torch-*.whl >/dev/null 2>&1 || .venv/bin/pip download -q --no-deps "torch==2.13.0+cpu" -d "$idx/torch"
  # A file:// index reads each project's index.html (PEP 503).
  for w in "$idx"/torch/*.whl; do printf '<a href="%s">%s</a>\n' "${w##*/}" "${w##*/}"; done > "$idx/torch/index.html"
  args+=(--build-arg PYTHON_IMAGE=localhost/bunko-base:bookworm --build-arg WEB_STAGE=web-prebuilt
         --build-arg SERVING_BASE=ray-venv --build-arg TORCH_INDEX_URL=file:///idx)
  volumes=(-v "$idx:/idx:ro")
  # The host's CA bundle and a pip.conf naming it, for the build steps only (mounts are not layers):
  # a host whose traffic passes a TLS-inspecting proxy trusts its CA, and so must pip in the build.
  conf="$(mktemp -d)"; trap 'rm -rf "$conf"' EXIT
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$conf/pip.conf"
  volumes+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro -v "$conf/pip.conf:/etc/pip.conf:ro")
  [[ -f api/static/index.html ]] || make web
fi
for p in "${PROCESSES[@]}"; do
  start=$(date +%s)
  "$ENGINE" build --network host "${volumes[@]}" "${args[@]}" -f images/Dockerfile --target "$p" \
    -t "localhost/bunko-$p:$VERSION" .
  echo "bunko-$p: built in $(( $(date +%s) - start )) s"
done
for p in "${PROCESSES[@]}"; do
  size=$("$ENGINE" image inspect --format '{{.Size}}' "localhost/bunko-$p:$VERSION")
  printf 'bunko-%-9s %5d MB\n' "$p" $(( size / 1000000 ))
done

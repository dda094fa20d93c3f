#!/bin/sh
# Install Bunko's wheel with the extras one process needs ($1, e.g. "api" or "api,local") into the
# active venv. torch is only needed by the in-process models of the local extra, and comes first
# from TORCH_INDEX_URL (the CPU index by default), so nothing can pull the CUDA build from PyPI.
set -eu
extras="$1"
case ",${extras}," in
  *,local,*) pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" ;;
esac
pip install "$(ls /wheels/bunko-*.whl)[${extras}]"

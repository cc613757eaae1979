# Contact Messages: the two commands are `make run` (the demo on the local stack) and `make test`.
# Every target installs what it needs by itself: the venv from requirements-dev.txt and the pinned
# Azurite from package-lock.json.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint typecheck unit bench soak clean worker-oldest schema

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

setup: $(STAMP) node_modules/.package-lock.json

run: setup
	$(PY) -m devstack.demo

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup
	$(PY) -m mypy

# Two worker processes (pytest-xdist), a test file each at a time: the suite spends much of its time
# waiting on emulators and runners, so the second CPU halves the wall time of `make test`.
TEST_WORKERS ?= 2

unit: setup infra-venv worker-oldest
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: lint typecheck unit

# The oldest azure-functions a Python 3.11 worker bundled, for the runner's --worker-packages tests.
worker-oldest: setup
	$(PY) -m devstack.host.worker_packages requirements-worker-oldest.txt .devstack/worker-oldest

bench: setup
	$(PY) -m bench.run_all

soak: setup
	$(PY) -m bench.soak

# checkov (tests/infra) has a large dependency tree: it gets its own venv, built from requirements-infra.txt.
INFRA_VENV := .venv-infra
INFRA_STAMP := $(INFRA_VENV)/.installed

.PHONY: infra-venv

$(INFRA_STAMP): requirements-infra.txt
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(INFRA_VENV)/bin/python -m pip install --quiet -r requirements-infra.txt
	touch $(INFRA_STAMP)

infra-venv: $(INFRA_STAMP)

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules .devstack .pytest_cache .mypy_cache .ruff_cache

# The send request's published JSON Schema, from the models (a test checks they agree).
schema: setup
	$(PY) -c 'import json, pathlib; from shared.models import send_request_json_schema as s; pathlib.Path("schemas/send-request.v1.json").write_text(json.dumps(s(), indent=2, ensure_ascii=False) + "\n")'

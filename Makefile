# Switchboard. `make run` runs the stack; `make test` runs the tests.
# Both create .venv and install what they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(sort $(shell find protos -name '*.proto'))

.PHONY: run test check lint types contracts protos protos-check bench console clean

# Decision: pip, not uv. uv would resolve faster but ignores pip's configuration (index mirrors,
# constraints, find-links) that a machine may rely on; pip's own output is the progress: one
# "Collecting"/"Downloading" line per package (lines for what is already installed are left out).
$(STAMP): pyproject.toml
	@echo "==> [1/3] creating $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] upgrading pip"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "==> [3/3] installing switchboard and its pinned dependencies (about 150 packages on a first run)"
	@set -o pipefail; $(BIN)/python -m pip install -e '.[dev,embedded]' | { grep --line-buffered -v '^Requirement already satisfied' || true; }
	@touch $(STAMP)

run: $(STAMP)  ## the whole stack, on embedded Postgres/Redis unless DATABASE_URL/REDIS_URL are set
	$(BIN)/switchboard up

test: $(STAMP)  ## the test suite, on real Postgres and Redis
	$(BIN)/python -m pytest

check: lint types contracts protos-check test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

protos: $(STAMP)  ## regenerate switchboard/api from protos/
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)

protos-check: $(STAMP)  ## fail when the checked-in generated code is stale
	@tmp=$$(mktemp -d) && \
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTOS) && \
	if diff -r -q $$tmp/switchboard/api switchboard/api -x '__pycache__' -x '__init__.py'; then echo "generated code is fresh"; \
	else echo "generated code is stale: run 'make protos' and commit the result"; rm -rf $$tmp; exit 1; fi; rm -rf $$tmp

bench: $(STAMP)  ## performance figures, measured side by side
	$(BIN)/python -m bench

console: $(STAMP)
	$(BIN)/switchboard console

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

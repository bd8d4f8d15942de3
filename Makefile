# `make start` and `make test` set everything up on a fresh machine and are fast when it is done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: start test lint format vendor bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the project's requirements change.
$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	touch $@ $(STAMP_RUN)

start: $(STAMP_RUN)
	$(BIN)/aria start $(ARGS)

test: $(STAMP_DEV)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP_DEV)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Pinned third-party binaries (OpenBao HSM build, CockroachDB 22.1, desync) into vendor_bin/.
vendor: $(STAMP_RUN)
	$(BIN)/python -m aria.vendor

bench: $(STAMP_DEV)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

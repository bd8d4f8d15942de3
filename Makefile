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
# xgrammar (aria_shape's constrained decoding) goes in without its dependencies: its metadata pulls
# triton (~1 GB), which only its CUDA path uses (see aria/apps/shape/README.md).
$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	$(PIP) install --no-deps xgrammar==0.2.8
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	$(PIP) install --no-deps xgrammar==0.2.8
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

# Benches run as modules (python -m bench.<name>): bench/queue.py would otherwise shadow `queue`.
bench: $(STAMP_DEV)
	@for script in bench/[a-z]*.py; do name=$$(basename $$script .py); echo "== bench.$$name"; \
		$(BIN)/python -m bench.$$name || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

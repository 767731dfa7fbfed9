# `make run`: set up and export + verify the seed model. `make test`: set up, lint and run the tests.
# `make test-fast`: lint, then every test that exports no real model (`-m "not slow"`, under a minute).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-fast lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

run: setup
	$(BIN)/exporter export mlp

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q

test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python benchmarks/bench_export.py
	$(BIN)/python benchmarks/bench_verify.py
	$(BIN)/python benchmarks/bench_runtimes.py

clean:
	rm -rf $(VENV) artifacts/*/ .pytest_cache

# Two commands do all the set-up on a fresh machine:
#   make demo   create the virtual environment, install, run the connector on the embedded demo
#   make test   install the development extras and run the whole suite

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config.example.toml

.PHONY: demo test soak lint typecheck check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/connector demo up --config $(CONFIG)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

# The long crash loops: 50 SIGKILLs over a 20,000-dossier backfill, then 50 over 5,000 while
# the local system keeps changing, with portal faults on; then 25 through portal refusals,
# parking and an operator's repairs over 3,000 (minutes).
# CONNECTOR_CRASH_SEED=<seed> replays a run; the seed is printed at the start.
soak: $(VENV)/.installed-dev
	CONNECTOR_SOAK=1 $(BIN)/python -m pytest -s tests/faults/test_crash_loop.py tests/faults/test_crash_repairs.py

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check connector tests bench
	$(BIN)/ruff format --check connector tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) var sandbox.db .pytest_cache .mypy_cache

# The two commands a new user runs: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast lint format bench clean

setup:  ## create .venv, install the project and the system packages (idempotent)
	@scripts/setup.sh

demo: setup  ## set up if needed, then run the main job on the embedded default data set
	@scripts/demo.sh

test: setup  ## ruff lint and format checks, then the whole test suite (e2e included)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup  ## everything but the slow end-to-end tests
	@$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

lint:
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

format:
	@$(BIN)/ruff check --fix .
	@$(BIN)/ruff format .

bench: setup  ## every benchmark script, figures printed
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:  ## remove run outputs (data sets, pipeline runs, pushed models); keeps .venv
	rm -rf runs

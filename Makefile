# The two commands a new user runs: `make demo` and `make test`. `make help` lists every
# target; `make` alone runs `setup`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
NOTEBOOK_ARGS ?=

.PHONY: setup demo test test-fast lint format bench notebooks clean help
.DEFAULT_GOAL := setup

setup:  ## create .venv, install the project and the system packages (idempotent)
	@scripts/setup.sh

demo: setup  ## set up if needed, then run the main job on the embedded default data set
	@scripts/demo.sh

test: setup  ## the static checks of `make lint`, then the whole test suite (e2e included)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/lint-imports
	@$(BIN)/mypy
	@$(BIN)/pytest $(PYTEST_ARGS)

test-fast: setup  ## everything but the slow end-to-end tests
	@$(BIN)/pytest -m "not e2e" $(PYTEST_ARGS)

lint:  ## the static checks of `make test` (ruff, import layers, types) without the tests
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/lint-imports
	@$(BIN)/mypy

format:  ## fix what ruff can fix and format the code in place
	@$(BIN)/ruff check --fix .
	@$(BIN)/ruff format .

bench: setup  ## every benchmark script, figures printed
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

notebooks: setup  ## run notebooks/ on the latest pipeline run (make demo first) into runs/notebooks/
	@$(BIN)/python notebooks/execute.py --out runs/notebooks $(NOTEBOOK_ARGS)

clean:  ## remove run outputs (data sets, pipeline runs, pushed models); keeps .venv
	rm -rf runs

help:  ## list the targets and what each does
	@awk 'BEGIN { FS = ":[^#]*## " } /^[a-zA-Z_-]+:.*## / { printf "  make %-10s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# The two commands of the README: `make run` (the whole system on embedded defaults) and
# `make test` (every quality gate and test). Both create or refresh .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck deps unit integration bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/ehiconnect up

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/python tools/deps.py --check

# The subpackage dependency graph (docs/architecture.md) and the counts it is judged by.
deps: $(STAMP)
	$(BIN)/python tools/deps.py

typecheck: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider tests

# Each prints its figures beside a baseline measured in the same run (a few minutes in all).
# bench/goals.py runs export, webhooks (live at 1,200/s and flat out), ingest and lift one after
# another and prints issue #17's table, with the machine's speed before and after it
# (bench/machine.py); run one of them alone for its detailed report.
bench: $(STAMP)
	$(BIN)/python bench/sandbox_attachments.py
	$(BIN)/python bench/goals.py
	$(BIN)/python bench/fleet.py --quick
	$(BIN)/python bench/console.py

clean:
	rm -rf $(VENV) .ehiconnect .mypy_cache .ruff_cache .pytest_cache

# tap-tradecloud developer commands. `make help` lists them.
PYTHON ?= python3
VENV := .venv
MELTANO_VENV := .venv-meltano
MELTANO_VERSION := 4.4.1
BIN := $(VENV)/bin
MELTANO := MELTANO_SEND_ANONYMOUS_USAGE_STATS=false $(MELTANO_VENV)/bin/meltano

.PHONY: help install test lint format typecheck check demo bench clean

help:  ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --group dev -e .
	touch $@

$(MELTANO_VENV)/.installed:
	$(PYTHON) -m venv $(MELTANO_VENV)
	$(MELTANO_VENV)/bin/pip install --quiet --upgrade pip
	$(MELTANO_VENV)/bin/pip install --quiet "meltano==$(MELTANO_VERSION)"
	touch $@

.meltano/.installed: meltano.yml pyproject.toml $(MELTANO_VENV)/.installed
	$(MELTANO) install
	touch $@

install: $(BIN)/.installed $(MELTANO_VENV)/.installed .meltano/.installed  ## Install the tap, the test tools, Meltano and its plugins

test: install  ## Run every test (unit, scenario, receiver faults, end to end through Meltano into PostgreSQL)
	$(BIN)/pytest

lint: $(BIN)/.installed  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed  ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(BIN)/.installed  ## mypy over the package
	$(BIN)/mypy tap_tradecloud

check: lint typecheck test  ## Lint, types and tests

demo: install  ## The whole pipeline against the offline sandbox: sandbox + receiver + meltano run (twice)
	$(BIN)/python scripts/demo.py

bench: install  ## Benchmarks; writes bench/RESULTS.md
	$(BIN)/python bench/run.py

clean:  ## Remove virtual environments, Meltano plugins and demo data
	rm -rf $(VENV) $(MELTANO_VENV) .meltano demo-data output .pytest_cache

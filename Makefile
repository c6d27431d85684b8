# asymm: the two commands are `make demo` and `make test`; both install what is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
PG_CONFIG ?= $(shell command -v pg_config 2>/dev/null || echo /usr/lib/postgresql/15/bin/pg_config)
VENV := .venv
BIN := $(VENV)/bin
# The demo's sandbox directory is per user (asymm refuses one another user made): $XDG_RUNTIME_DIR when
# not root (root's is 0700, which the unprivileged server user cannot enter), else /tmp/asymm-demo-UID.
DEMO_UID := $(shell id -u)
DEMO_DIR ?= $(if $(and $(XDG_RUNTIME_DIR),$(filter-out 0,$(DEMO_UID))),$(XDG_RUNTIME_DIR)/asymm-demo,$(or $(TMPDIR),/tmp)/asymm-demo-$(DEMO_UID))
DEMO_DB ?= asymm_demo
# Root, or a writable share dir, installs directly; otherwise through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || [ -w "$$($(PG_CONFIG) --sharedir 2>/dev/null)/extension" ] || echo sudo)

.PHONY: help deps venv dashboard install installcheck lint unit test check-in-sandbox pytest reference reference-in-sandbox demo demo-env demo-hint demo-serve demo-down clean

help:
	@echo "make demo       build a demo database on a throwaway PostgreSQL + Redis and show what asymm sees"
	@echo "make test       run every test: ruff, mypy, unit tests, then pg_regress + integration tests on throwaway servers"
	@echo "make unit       the unit tests only (pure Python, no server, seconds)"
	@echo "make install    install the extension into \$$(pg_config --sharedir) (honours PG_CONFIG)"
	@echo "make installcheck  pg_regress against the server in PGHOST/PGPORT/PGUSER"
	@echo "make demo-serve the demo, then keep the daemon and dashboard serving until Ctrl-C"
	@echo "make demo-env   print the shell lines for the demo: eval \"\$$(make -s demo-env)\" puts asymm on PATH"
	@echo "make demo-down  stop the demo's servers"
	@echo "make reference  regenerate README.md's tables of SQL functions and settings from a fresh install"
	@echo "make dashboard  fetch the dashboard's JavaScript deps from npm (dashboard/) into the package"

deps:
	@scripts/ensure-deps.sh

$(BIN)/asymm: control/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e 'control[test]'
	@touch $@

# The web dashboard's JavaScript dependencies: from the npm registry (dashboard/package-lock.json),
# copied into the Python package so that the daemon serves them and the page works offline.
DASHBOARD_VENDOR := control/asymm/daemon/static/vendor/three.module.js
$(DASHBOARD_VENDOR): dashboard/package.json dashboard/package-lock.json dashboard/build.mjs
	cd dashboard && npm ci --no-audit --no-fund --loglevel=error && node build.mjs
	@touch $@

dashboard: deps $(DASHBOARD_VENDOR)

venv: deps $(BIN)/asymm dashboard

install: deps
	$(SUDO) $(MAKE) -C extension install PG_CONFIG=$(PG_CONFIG)

installcheck:
	$(MAKE) -C extension installcheck PG_CONFIG=$(PG_CONFIG)

lint: venv
	$(BIN)/ruff check control tests bench scripts
	$(BIN)/ruff format --check control tests bench scripts extension/build.py
	$(BIN)/mypy
	$(BIN)/mypy scripts
	$(BIN)/lint-imports

# The layers: tests/unit needs no server; tests/integration and tests/regress run in the sandbox.
PYTEST_ARGS ?= tests/integration

unit: venv
	$(BIN)/pytest -q tests/unit

pytest: venv
	$(BIN)/pytest $(PYTEST_ARGS)

test: venv lint unit
	scripts/locked.sh $(MAKE) --no-print-directory install check-in-sandbox

# One checkout at a time may install and test (see scripts/locked.sh).
check-in-sandbox:
	scripts/with-sandbox.sh $(MAKE) --no-print-directory installcheck pytest

# README.md's reference tables come from the database (COMMENT ON, asymm.setting_defaults):
# scripts/reference.py installs this checkout's extension in a scratch database and rewrites them.
reference: venv
	scripts/locked.sh $(MAKE) --no-print-directory install reference-in-sandbox

reference-in-sandbox:
	scripts/with-sandbox.sh $(BIN)/python scripts/reference.py --scratch

demo: venv install
	$(BIN)/asymm sandbox up --dir $(DEMO_DIR) > /dev/null
	eval "$$($(BIN)/asymm sandbox env --dir $(DEMO_DIR))" && timeout --foreground 300 $(BIN)/asymm demo
	@echo "The demo's servers keep running; 'make demo-down' stops them. To run the asymm commands above"
	@echo "in any shell (asymm on PATH, PG* and ASYMM_* pointed at the demo database):"
	@echo '  $(DEMO_ENV_LINE)'

# The line `make demo` ends with (demo-hint prints it alone, for tests/test_demo.py).  DEMO_DIR is
# spelled out: another shell may lack this one's XDG_RUNTIME_DIR (sudo, ssh, tmux).
DEMO_ENV_LINE = eval "$$(make -s -C $(CURDIR) demo-env DEMO_DIR=$(DEMO_DIR)$(if $(filter command line environment,$(origin DEMO_DB)), DEMO_DB=$(DEMO_DB)))"
demo-hint:
	@echo '$(DEMO_ENV_LINE)'

# What `eval "$(make -s demo-env)"` runs: the venv's bin first on PATH, then the demo sandbox's
# variables (asymm sandbox env) for the demo database.
demo-env:
	@printf 'export PATH=%q:"$$PATH"\n' "$(abspath $(BIN))"
	@$(BIN)/asymm sandbox env --dir $(DEMO_DIR) --dbname $(DEMO_DB)

# Like demo, then the daemon keeps serving the dashboard until Ctrl-C.
demo-serve: venv install
	$(BIN)/asymm sandbox up --dir $(DEMO_DIR) > /dev/null
	eval "$$($(BIN)/asymm sandbox env --dir $(DEMO_DIR))" && $(BIN)/asymm demo --serve --http-port $${ASYMM_DEMO_PORT:-9849}

demo-down:
	$(BIN)/asymm sandbox down --dir $(DEMO_DIR)

clean:
	$(MAKE) -C extension clean PG_CONFIG=$(PG_CONFIG)
	rm -rf .mypy_cache .ruff_cache .pytest_cache dashboard/node_modules control/asymm/daemon/static/vendor

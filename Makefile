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
# Root, or a writable share dir, installs directly; otherwise through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || [ -w "$$($(PG_CONFIG) --sharedir 2>/dev/null)/extension" ] || echo sudo)

.PHONY: help deps venv dashboard install installcheck lint test check-in-sandbox pytest demo demo-serve demo-down clean

help:
	@echo "make demo       build a demo database on a throwaway PostgreSQL + Redis and show what asymm sees"
	@echo "make test       run every test (ruff, mypy, pg_regress, pytest) against throwaway servers"
	@echo "make install    install the extension into \$$(pg_config --sharedir) (honours PG_CONFIG)"
	@echo "make installcheck  pg_regress against the server in PGHOST/PGPORT/PGUSER"
	@echo "make demo-serve the demo, then keep the daemon and dashboard serving until Ctrl-C"
	@echo "make demo-down  stop the demo's servers"
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
	$(BIN)/ruff check control tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: venv
	$(BIN)/pytest $(PYTEST_ARGS)

test: venv lint
	scripts/locked.sh $(MAKE) --no-print-directory install check-in-sandbox

# One checkout at a time may install and test (see scripts/locked.sh).
check-in-sandbox:
	scripts/with-sandbox.sh $(MAKE) --no-print-directory installcheck pytest

demo: venv install
	$(BIN)/asymm sandbox up --dir $(DEMO_DIR) > /dev/null
	eval "$$($(BIN)/asymm sandbox env --dir $(DEMO_DIR))" && timeout --foreground 300 $(BIN)/asymm demo
	@echo "The demo's servers keep running; 'make demo-down' stops them."

# Like demo, then the daemon keeps serving the dashboard until Ctrl-C.
demo-serve: venv install
	$(BIN)/asymm sandbox up --dir $(DEMO_DIR) > /dev/null
	eval "$$($(BIN)/asymm sandbox env --dir $(DEMO_DIR))" && $(BIN)/asymm demo --serve --http-port $${ASYMM_DEMO_PORT:-9849}

demo-down:
	$(BIN)/asymm sandbox down --dir $(DEMO_DIR)

clean:
	$(MAKE) -C extension clean PG_CONFIG=$(PG_CONFIG)
	rm -rf .mypy_cache .ruff_cache .pytest_cache dashboard/node_modules control/asymm/daemon/static/vendor

#!/usr/bin/env bash
# Run a command while holding the machine-wide extension lock.  The extension is installed into
# PostgreSQL's one share directory, so two checkouts (git worktrees) testing at once would
# overwrite each other's SQL; `make test` and friends serialise on this lock.
# Usage: scripts/locked.sh COMMAND [ARGS...]
set -euo pipefail
exec flock "${ASYMM_INSTALL_LOCK:-/tmp/asymm-extension-install.lock}" "$@"

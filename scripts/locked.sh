#!/usr/bin/env bash
# Run a command while holding the machine-wide extension lock.  The extension is installed into
# PostgreSQL's one share directory, so two checkouts (git worktrees) testing at once would
# overwrite each other's SQL; `make test` and friends serialise on this lock.
# The lock lives beside what it protects, in the extension directory that only whoever may install
# there can write, not under a fixed /tmp name that another local user could create first (and
# then hold for ever, or make root's open of it fail under fs.protected_regular).  A user who
# installs through sudo locks in its own runtime directory instead.  ASYMM_INSTALL_LOCK overrides.
# Usage: scripts/locked.sh COMMAND [ARGS...]
set -euo pipefail
lock=${ASYMM_INSTALL_LOCK:-}
if [ -z "$lock" ]; then
    extdir="$("${PG_CONFIG:-pg_config}" --sharedir 2>/dev/null || echo /usr/share/postgresql/15)/extension"
    if [ -d "$extdir" ] && [ -w "$extdir" ]; then
        lock="$extdir/.asymm-install.lock"
    else
        private="${XDG_RUNTIME_DIR:-$HOME/.cache}/asymm"
        mkdir -p -m 0700 "$private"
        lock="$private/install.lock"
    fi
fi
exec flock "$lock" "$@"

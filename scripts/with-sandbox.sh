#!/usr/bin/env bash
# Run a command against a fresh throwaway PostgreSQL + Redis sandbox, then stop it whatever happens.
# Usage: scripts/with-sandbox.sh COMMAND [ARGS...]   (the sandbox's PG*/ASYMM_* variables are exported)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
asymm="$here/.venv/bin/asymm"
dir=$(mktemp -d "${TMPDIR:-/tmp}/asymm-sandbox-XXXXXX")
rmdir "$dir"   # `sandbox up` creates it and refuses a directory that holds anything else
cleanup() { "$asymm" sandbox down --dir "$dir" >/dev/null || echo "with-sandbox: could not stop $dir" >&2; }
trap cleanup EXIT
eval "$("$asymm" sandbox up --dir "$dir")"
"$@"

#!/usr/bin/env bash
# Run a command against a fresh throwaway PostgreSQL + Redis sandbox, then stop it whatever happens.
# Usage: scripts/with-sandbox.sh COMMAND [ARGS...]   (the sandbox's PG*/ASYMM_* variables are exported,
# PGPASSFILE and ASYMM_REDIS_URL with the generated passwords)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
asymm="$here/.venv/bin/asymm"
# mktemp makes it ours and 0700, atomically: `sandbox up` takes an empty directory of ours as is (and
# refuses one another user made), so there is no window between choosing the name and creating it.
dir=$(mktemp -d "${TMPDIR:-/tmp}/asymm-sandbox-XXXXXX")
cleanup() {
    "$asymm" sandbox down --dir "$dir" >/dev/null || echo "with-sandbox: could not stop $dir" >&2
    rmdir "$dir" 2>/dev/null || true   # left empty when `sandbox up` failed
}
trap cleanup EXIT
eval "$("$asymm" sandbox up --dir "$dir")"
"$@"

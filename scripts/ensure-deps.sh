#!/usr/bin/env bash
# Install the Debian packages asymm needs, only those that are missing.  Idempotent; uses sudo
# when not root.  Called by `make deps` (and so by `make test` and `make demo`).
set -euo pipefail

packages=(
  postgresql-15 postgresql-client-15 postgresql-plpython3-15 postgresql-15-hypopg
  postgresql-server-dev-15 gcc libc6-dev redis-server make  # the extension has a C part
  postgresql-15-pg-qualstats  # the index-advisor benchmark compares with pg_qualstats_index_advisor()
  chromium chromium-driver  # the dashboard's headless-browser test
  graphviz  # `asymm graph --format dot | dot -Tsvg`, as the demo suggests
)
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)
# The dashboard's JavaScript build (dashboard/, npm ci).  By command, not by package: a NodeSource
# nodejs bundles npm and conflicts with Debian's npm package.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "ensure-deps: missing ${missing[*]} and no sudo to install them" >&2; exit 1; }
  sudo="sudo"
fi
echo "ensure-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2

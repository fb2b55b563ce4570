#!/usr/bin/env bash
# Type-check the `gymwire` package with mypy. The folders sit at the top level and pyproject maps them
# into the `gymwire` namespace; mypy cannot follow setuptools' editable-install finder, so the check
# runs over a tree of links that lays the folders out as the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/gymwire"
for pair in trainer:trainer client:client env_servers:env_servers cli:cli integrations:integrations protos/gymwire/v1:v1; do
  ln -s "$root/${pair%%:*}" "$tree/gymwire/${pair##*:}"
done
cd "$tree"
mypy --config-file "$root/pyproject.toml" -p gymwire "$@"

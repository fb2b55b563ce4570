#!/usr/bin/env bash
# Type-check the `gymwire` package with mypy: `bash scripts/typecheck.sh [MYPY OPTIONS]`, the same for
# CI (scripts/test.sh) and contributors. The folders sit at the top level and pyproject.toml's
# [tool.setuptools.package-dir] maps them into the `gymwire` namespace; mypy cannot follow setuptools'
# editable-install finder, so the check runs over a throwaway tree of links that lays the folders out
# as the installed package. The links are made from that same mapping: a folder mapped there is
# checked, with nothing to add here.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
python - "$root" "$tree" <<'PY'
import pathlib, sys, tomllib
root, tree = map(pathlib.Path, sys.argv[1:])
mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
for package, folder in mapping.items():
    link = tree.joinpath(*package.split("."))
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(root / folder, target_is_directory=True)
PY
cd "$tree"
python -m mypy --config-file "$root/pyproject.toml" -p gymwire "$@"

#!/usr/bin/env bash
# The main job on embedded defaults: install into ./.venv, then `gymwire demo` (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh "train,babyai,textcraft"
exec .venv/bin/gymwire demo "$@"

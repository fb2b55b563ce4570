"""One GRPO step under FSDP2 against the same step in one process; run by tests/test_distributed.py.

Usage: python -m torch.distributed.run --nproc_per_node 2 tests/distributed_grads.py OUT.json [full lora]

Rank 0 also computes the reference: a plain, unsharded copy of the model that runs every
micro-batch itself through `accumulate` with a single-process context (no collectives), exactly
what one process would do. Every rank then runs its share under FSDP2; rank 0 writes how far loss,
gradients, gradient norm, weights after one AdamW step and the checkpoint state are from the
reference.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch

from gymwire.trainer import distributed
from gymwire.trainer.grpo import clipped_policy_loss, pack_microbatches, token_logprobs
from gymwire.trainer.model import resolve_model

LR = 1e-5
TEXTS = [  # (model turn, environment reply, model turn): the model's turns are trained
    ("Action: open fridge", "You open the fridge. You see an apple.", "Action: take apple"),
    ("Action: go north", "You are in a hallway.", "Action: look"),
    ("Action: take apple from table", "Nothing happens.", "Action: inventory"),
    ("Action: open the blue door with the key", "The door is locked.", "Action: use key"),
    ("Action: look", "A kitchen: fridge, table, sink, stove.", "Action: go to fridge"),
]
ADVANTAGES = [1.2, -0.8, -0.4, 0.9, -0.9]
PROMPT = "You are an agent in a text game. Answer with one line: Action: <action>.\n"


@dataclass
class MicroBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    positions: torch.Tensor
    mask: torch.Tensor
    old_logps: torch.Tensor
    advantages: torch.Tensor
    weights: torch.Tensor


def build_rows(tokenizer: Any) -> list[dict[str, list]]:
    rows = []
    for (act1, env, act2), advantage in zip(TEXTS, ADVANTAGES, strict=True):
        ids: list[int] = []
        mask: list[int] = []
        for text, trained in ((PROMPT, 0), (act1 + "\n", 1), (env + "\n", 0), (act2 + "\n", 1)):
            piece = tokenizer.encode(text, add_special_tokens=False)
            ids += piece
            mask += [trained] * len(piece)
        rows.append({"ids": ids, "mask": mask, "advantage": advantage})
    return rows


def add_old_logprobs(model: torch.nn.Module, rows: list[dict[str, list]]) -> None:
    """Sampler log-probs: the initial policy's own, shifted per token so that ratios differ from 1
    and some tokens are clipped (both sides of the PPO clip take part)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([row["ids"]])
            logps = token_logprobs(model, ids, torch.ones_like(ids), 1)[0]
            shift = (torch.rand(len(logps), generator=generator) - 0.5) * 0.6
            row["old"] = [0.0] + (logps + shift).tolist()


def microbatches(rows: list[dict[str, list]], token_budget: int) -> list[MicroBatch]:
    """Padded micro-batches whose per-token weights sum to the step's loss ("sequences" normalisation)."""
    batches = []
    for indices in pack_microbatches([len(r["ids"]) for r in rows], token_budget):
        length = max(len(rows[i]["ids"]) for i in indices)
        ids = torch.zeros((len(indices), length), dtype=torch.long)
        attn = torch.zeros_like(ids)
        mask = torch.zeros((len(indices), length))
        old = torch.zeros((len(indices), length))
        for b, i in enumerate(indices):
            n = len(rows[i]["ids"])
            ids[b, :n] = torch.tensor(rows[i]["ids"])
            attn[b, :n] = 1
            mask[b, :n] = torch.tensor(rows[i]["mask"], dtype=torch.float32)
            old[b, :n] = torch.tensor(rows[i]["old"])
        positions = torch.nonzero(mask.sum(dim=0) > 0).flatten()
        mask = mask[:, positions]
        weights = mask / mask.sum(dim=1, keepdim=True) / len(rows)
        advantages = torch.tensor([rows[i]["advantage"] for i in indices])
        batches.append(MicroBatch(ids, attn, positions, mask, old[:, positions], advantages, weights))
    return batches


def loss_fn(model: torch.nn.Module):
    def run(batch: MicroBatch) -> tuple[torch.Tensor, dict[str, float]]:
        logps = token_logprobs(model, batch.input_ids, batch.attention_mask, batch.positions)
        per_token, _, ratio, clipped = clipped_policy_loss(logps, batch.old_logps, batch.advantages, batch.mask)
        loss = (per_token * batch.weights).sum()
        return loss, {"tokens": float(batch.mask.sum()), "clipped": float(clipped.sum())}

    return run


def load_model(model_dir: str, lora: bool) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if lora:
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(1)  # the same adapter initialisation on every rank and in the reference
        config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
        # LoRA initialises B to zero, so A would get no gradient in the first step: give B values.
        for name, param in model.named_parameters():
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.02)
    return model.train()


def trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def one_step(model: torch.nn.Module, batches: list[MicroBatch], dist: distributed.Distributed) -> dict[str, Any]:
    optimizer = torch.optim.AdamW([p for _, p in trainable(model)], lr=LR, weight_decay=0.0)
    optimizer.zero_grad(set_to_none=True)
    started = time.perf_counter()
    sums = distributed.accumulate(batches, loss_fn(model), dist)
    grads = {n: distributed.full_tensor(p.grad, dist) for n, p in trainable(model)}
    grad_norm = distributed.clip_grad_norm_([p for _, p in trainable(model)], max_norm=1e9)
    optimizer.step()
    return {"sums": sums, "grads": grads, "grad_norm": grad_norm, "optimizer": optimizer,
            "seconds": time.perf_counter() - started}


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, float, str]:
    """Largest absolute difference, largest difference relative to each tensor's magnitude, and where."""
    worst_abs, worst_rel, where = 0.0, 0.0, ""
    for name, x in a.items():
        d = float((x.float() - b[name].float()).abs().max())
        rel = d / max(float(b[name].float().abs().max()), 1e-12)
        worst_abs = max(worst_abs, d)
        if rel > worst_rel:
            worst_rel, where = rel, name
    return worst_abs, worst_rel, where


def optimizer_moments(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value for name, slots in state["state"].items()
            for key, value in slots.items() if key in ("exp_avg", "exp_avg_sq")}


def compare(mode: str, batches: list[MicroBatch], model_dir: str, dist: distributed.Distributed) -> dict[str, Any]:
    lora = mode == "lora"
    single = distributed.Distributed()
    if dist.is_main:
        reference = load_model(model_dir, lora)
        ref = one_step(reference, batches, single)
        ref_weights = dict(distributed.full_state_items(reference, single))
        ref_model_state, ref_optim_state = distributed.full_checkpoint_state(reference, ref["optimizer"])

    model = distributed.shard_model(load_model(model_dir, lora), dist, precision="fp32")
    got = one_step(model, batches, dist)
    weights = dict(distributed.full_state_items(model, dist))
    model_state, optim_state = distributed.full_checkpoint_state(model, got["optimizer"])

    # Resume: a fresh sharded model and optimizer loaded from rank 0's full state match the trained one.
    fresh = distributed.shard_model(load_model(model_dir, lora), dist, precision="fp32")
    fresh_optimizer = torch.optim.AdamW([p for _, p in trainable(fresh)], lr=LR)
    distributed.load_full_checkpoint_state(fresh, fresh_optimizer, model_state if dist.is_main else {},
                                           optim_state if dist.is_main else {}, dist)
    reloaded = dict(distributed.full_state_items(fresh, dist))
    reloaded_model_state, reloaded_optim_state = distributed.full_checkpoint_state(fresh, fresh_optimizer)
    if not dist.is_main:
        return {}

    grad_abs, grad_rel, grad_where = max_diff(got["grads"], ref["grads"])
    weight_abs, weight_rel, weight_where = max_diff(weights, ref_weights)
    state_abs, _, _ = max_diff(model_state, ref_model_state)
    moments_abs, moments_rel, _ = max_diff(optimizer_moments(optim_state), optimizer_moments(ref_optim_state))
    reload_abs, _, _ = max_diff(reloaded, weights)
    reload_moments_abs, _, _ = max_diff(optimizer_moments(reloaded_optim_state), optimizer_moments(optim_state))
    return {
        "microbatches": len(batches),
        "loss": {"reference": ref["sums"]["loss"], "fsdp": got["sums"]["loss"]},
        "stats": {"reference": ref["sums"], "fsdp": got["sums"]},
        "grad_norm": {"reference": ref["grad_norm"], "fsdp": got["grad_norm"]},
        "grad_names": {"reference": sorted(ref["grads"]), "fsdp": sorted(got["grads"])},
        "grad_max_abs_diff": grad_abs,
        "grad_max_rel_diff": grad_rel,
        "grad_worst_param": grad_where,
        "grad_max_abs": max(float(g.abs().max()) for g in ref["grads"].values()),
        "weight_names": {"reference": sorted(ref_weights), "fsdp": sorted(weights)},
        "weight_max_abs_diff": weight_abs,
        "weight_max_rel_diff": weight_rel,
        "weight_worst_param": weight_where,
        "weight_max_change": max_diff(weights, dict(distributed.full_state_items(load_model(model_dir, lora),
                                                                                  single)))[0],
        "checkpoint_keys": {"reference": sorted(ref_model_state), "fsdp": sorted(model_state)},
        "checkpoint_optimizer_keys": {"reference": sorted(ref_optim_state["state"]),
                                      "fsdp": sorted(optim_state["state"])},
        "checkpoint_max_abs_diff": state_abs,
        "optimizer_moments_max_abs_diff": moments_abs,
        "optimizer_moments_max_rel_diff": moments_rel,
        "reload_weight_max_abs_diff": reload_abs,
        "reload_optimizer_max_abs_diff": reload_moments_abs,
        "reload_checkpoint_keys": sorted(reloaded_model_state),
        "seconds": {"reference": ref["seconds"], "fsdp": got["seconds"]},
    }


def main(out: str, modes: list[str]) -> None:
    torch.set_num_threads(1)
    dist = distributed.init_from_env("cpu")
    model_dir = str(resolve_model("smollm2"))
    rows = None
    if dist.is_main:  # as in training: rank 0 has the episodes and hands them to every rank
        from transformers import AutoTokenizer

        rows = build_rows(AutoTokenizer.from_pretrained(model_dir))
        add_old_logprobs(load_model(model_dir, lora=False).eval(), rows)
    rows = distributed.broadcast_object(rows, dist)
    longest = max(len(r["ids"]) for r in rows)
    batches = microbatches(rows, token_budget=2 * longest)  # 3 micro-batches: one rank has an idle pass
    results: dict[str, Any] = {"world_size": dist.world_size, "rows_received": len(rows)}
    for mode in modes:
        results[mode] = compare(mode, batches, model_dir, dist)
    if dist.is_main:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)
    dist.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["full", "lora"])

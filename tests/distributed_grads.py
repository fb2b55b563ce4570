"""One GRPO step under FSDP2 against the same step in one process; run by tests/test_distributed.py.

Usage: python -m torch.distributed.run --nproc_per_node 2 tests/distributed_grads.py OUT.json [full lora]

Rank 0 also computes the reference: a plain, unsharded copy of the model that runs every
micro-batch itself through `accumulate` with a single-process context (no collectives), exactly
what one process would do. Every rank then runs its share under FSDP2; rank 0 writes how far loss,
gradients, gradient norm, weights after one AdamW step and the checkpoint state are from the
reference.
"""

from __future__ import annotations

import gc
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


def one_step(
    model: torch.nn.Module, batches: list[MicroBatch], dist: distributed.Distributed, on_grad: Any = None
) -> dict[str, Any]:
    """accumulate, then each full gradient handed to `on_grad(name, grad)` (gathered one at a time
    and dropped: the machine is shared), clip, AdamW. Gradients are left in place."""
    optimizer = torch.optim.AdamW([p for _, p in trainable(model)], lr=LR, weight_decay=0.0)
    optimizer.zero_grad(set_to_none=True)
    started = time.perf_counter()
    sums = distributed.accumulate(batches, loss_fn(model), dist)
    seconds = time.perf_counter() - started
    names = []
    for name, param in trainable(model):
        names.append(name)
        grad = distributed.full_tensor(param.grad, dist)
        if on_grad is not None:
            on_grad(name, grad)
    grad_norm = distributed.clip_grad_norm_([p for _, p in trainable(model)], max_norm=1e9)
    optimizer.step()
    return {"sums": sums, "grad_names": names, "grad_norm": grad_norm, "optimizer": optimizer, "seconds": seconds}


class Diff:
    """Largest absolute difference, largest relative to each reference tensor's magnitude, and where."""

    def __init__(self) -> None:
        self.abs, self.rel, self.where, self.names = 0.0, 0.0, "", []

    def add(self, name: str, got: torch.Tensor, want: torch.Tensor) -> None:
        self.names.append(name)
        d = float((got.float() - want.float()).abs().max())
        rel = d / max(float(want.float().abs().max()), 1e-12)
        self.abs = max(self.abs, d)
        if rel > self.rel:
            self.rel, self.where = rel, name

    def compare(self, got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> Diff:
        for name, tensor in got.items():
            self.add(name, tensor, want[name])
        return self


def optimizer_moments(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value
        for name, slots in state["state"].items()
        for key, value in slots.items()
        if key in ("exp_avg", "exp_avg_sq")
    }


def local_optimizer_diff(a: torch.optim.Optimizer, b: torch.optim.Optimizer, dist: distributed.Distributed) -> float:
    """Largest difference between two optimizers' moments over the same shards, over all ranks."""
    worst = torch.zeros(())
    for pa, pb in zip(
        (p for g in a.param_groups for p in g["params"]), (p for g in b.param_groups for p in g["params"]), strict=True
    ):
        for key in ("exp_avg", "exp_avg_sq"):
            x, y = a.state[pa][key], b.state[pb][key]
            x, y = getattr(x, "_local_tensor", x), getattr(y, "_local_tensor", y)
            worst = torch.maximum(worst, (x - y).abs().max())
    if dist.enabled:
        torch.distributed.all_reduce(worst, op=torch.distributed.ReduceOp.MAX)
    return float(worst)


def compare(mode: str, batches: list[MicroBatch], model_dir: str, dist: distributed.Distributed) -> dict[str, Any]:
    lora = mode == "lora"
    single = distributed.Distributed()
    clock = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        phases[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    reference: torch.nn.Module | None = None
    if dist.is_main:  # one process's step; its gradients stay in .grad for the comparison
        reference = load_model(model_dir, lora)
        ref = one_step(reference, batches, single)
        ref_grads = dict(trainable(reference))
        ref_weights = dict(distributed.full_state_items(reference, single))  # views, no copies
    lap("reference")

    model = distributed.shard_model(load_model(model_dir, lora), dist, precision="fp32")
    lap("shard")
    grads = Diff()
    got = one_step(model, batches, dist, on_grad=lambda n, g: dist.is_main and grads.add(n, g, ref_grads[n].grad))
    lap("step")
    weights = Diff()
    for name, tensor in distributed.full_state_items(model, dist):
        if dist.is_main:
            weights.add(name, tensor, ref_weights[name])
    lap("full_state_items")

    model_state, optim_state = distributed.full_checkpoint_state(model, got["optimizer"])
    lap("full_checkpoint_state")
    result: dict[str, Any] = {}
    if dist.is_main:
        ref_model_state, ref_optim_state = distributed.full_checkpoint_state(reference, ref["optimizer"])
        result.update(
            {
                "checkpoint_keys": {"reference": sorted(ref_model_state), "fsdp": sorted(model_state)},
                "checkpoint_optimizer_keys": {
                    "reference": sorted(ref_optim_state["state"]),
                    "fsdp": sorted(optim_state["state"]),
                },
                "checkpoint_max_abs_diff": Diff().compare(model_state, ref_model_state).abs,
                "optimizer_moments_max_rel_diff": Diff()
                .compare(optimizer_moments(optim_state), optimizer_moments(ref_optim_state))
                .rel,
            }
        )
        del ref_model_state, ref_optim_state

    # Resume: a fresh sharded model and optimizer loaded from rank 0's full state match the trained one.
    fresh = distributed.shard_model(load_model(model_dir, lora), dist, precision="fp32")
    fresh_optimizer = torch.optim.AdamW([p for _, p in trainable(fresh)], lr=LR)
    distributed.load_full_checkpoint_state(fresh, fresh_optimizer, model_state, optim_state, dist)
    del model_state, optim_state
    reloaded = Diff()
    for (name, a), (_, b) in zip(
        distributed.full_state_items(fresh, dist), distributed.full_state_items(model, dist), strict=True
    ):
        if dist.is_main:
            reloaded.add(name, a, b)
    reload_optimizer = local_optimizer_diff(fresh_optimizer, got["optimizer"], dist)
    lap("reload")
    if not dist.is_main:
        return {}

    initial = Diff()
    for name, tensor in distributed.full_state_items(load_model(model_dir, lora), single):
        initial.add(name, ref_weights[name], tensor)
    import resource

    return {
        **result,
        "microbatches": len(batches),
        "loss": {"reference": ref["sums"]["loss"], "fsdp": got["sums"]["loss"]},
        "stats": {"reference": ref["sums"], "fsdp": got["sums"]},
        "grad_norm": {"reference": ref["grad_norm"], "fsdp": got["grad_norm"]},
        "grad_names": {"reference": ref["grad_names"], "fsdp": grads.names},
        "grad_max_abs_diff": grads.abs,
        "grad_max_rel_diff": grads.rel,
        "grad_worst_param": grads.where,
        "grad_max_abs": max(float(p.grad.abs().max()) for p in ref_grads.values()),
        "weight_names": {"reference": sorted(ref_weights), "fsdp": sorted(weights.names)},
        "weight_max_abs_diff": weights.abs,
        "weight_max_rel_diff": weights.rel,
        "weight_worst_param": weights.where,
        "weight_max_change": initial.abs,
        "reload_weight_max_abs_diff": reloaded.abs,
        "reload_optimizer_max_abs_diff": reload_optimizer,
        "seconds": {"reference_step": ref["seconds"], "fsdp_step": got["seconds"], **phases},
        "rank0_max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
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
        gc.collect()
    if dist.is_main:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)
    dist.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["full", "lora"])

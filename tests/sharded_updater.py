"""One GRPO step of the real updater, in one process or sharded over torchrun's ranks.

`python tests/sharded_updater.py single OUT` and `torchrun --nproc_per_node 2 tests/sharded_updater.py
sharded OUT` take the same step on the same episodes (the default model, fp32, KL to a reference);
each writes its metrics to OUT/metrics.json and its updated model as an HF folder to OUT/model.
Sharded, rank 0 drives a ShardedUpdater and rank 1 runs follow(), exactly as `gymwire train` does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from gymwire.trainer.distributed import init_from_env
from gymwire.trainer.grpo import GRPOConfig, GRPOUpdater
from gymwire.trainer.model import resolve_model
from gymwire.trainer.types import Trajectory
from gymwire.trainer.update_group import ShardedUpdater, follow, stop_followers

# Sharded, every row runs in full; so does the one-process reference, so the two differ only by sharding
# (the shared-prompt pass is checked against full rows in test_grpo).
CONFIG = GRPOConfig(learning_rate=1e-4, beta=0.01, precision="fp32", token_budget=96, device="cpu", share_prefix=False)


def episodes(tokenizer) -> list[Trajectory]:
    """Two groups of fixed text; sampler log-probs a little off, so the IS weights take part."""
    texts = [
        "Action: get 1 oak log",
        "Action: craft 4 oak planks using 1 oak log",
        "Action: inventory",
        "Thought: I need sticks first. Action: craft 4 sticks using 2 oak planks",
    ]
    prompt = tokenizer.encode("You are crafting in Minecraft. Goal: a wooden pickaxe.\n")
    out = []
    for i, text in enumerate(texts):
        turn = tokenizer.encode(text)
        ids = prompt + turn
        mask = [0] * len(prompt) + [1] * len(turn)
        logprobs = [0.0] * len(prompt) + [-1.0 - 0.1 * (j % 5) for j in range(len(turn))]
        out.append(
            Trajectory(
                env="textcraft",
                task_id=f"t{i // 2}",
                group_id=f"g{i // 2}",
                token_ids=ids,
                loss_mask=mask,
                logprobs=logprobs,
                reward=float(i % 2),
            )
        )
    return out


def main(mode: str, out: Path) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model_dir = str(resolve_model("smollm2"))
    if mode == "single":
        updater = GRPOUpdater(model_dir, CONFIG)
    else:
        dist = init_from_env("cpu")
        if not dist.is_main:
            follow(dist)
            dist.close()
            return
        updater = ShardedUpdater(model_dir, CONFIG, dist)
    metrics = updater.step(episodes(updater.tokenizer))
    metrics["sequence_logprobs"] = updater.sequence_logprobs(episodes(updater.tokenizer)[0].token_ids)
    updater.export(out / "model")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics))
    if mode != "single":
        stop_followers(dist)
        dist.close()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))

"""GRPO update cost per step: every row in full vs the prompt a micro-batch shares run once.

Two groups of 8 episodes shaped like the main job's TextCraft episodes (a 330-token prompt: system
prompt, instruction, first observation; then 4 turns of 35 sampled and 25 environment tokens), the
default model on CPU, one `GRPOUpdater.step` per configuration after a warm-up step, in one run:

    python -m bench.update                 # ~6 min on 2 cores
    python -m bench.update --lora 32       # also LoRA rank 32 (with and without checkpointing)
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from pathlib import Path

from bench import write_rows
from gymwire.trainer.types import Trajectory


def episodes(groups: int, size: int, prompt: int, turns: int, seed: int = 0) -> list[Trajectory]:
    rng = random.Random(seed)
    out = []
    for g in range(groups):
        shared = [rng.randrange(1000, 40000) for _ in range(prompt)]
        for i in range(size):
            ids, mask = list(shared), [0] * prompt
            for _ in range(turns):
                ids += [rng.randrange(1000, 40000) for _ in range(60)]
                mask += [1] * 35 + [0] * 25
            out.append(
                Trajectory(
                    env="textcraft",
                    task_id=f"task-{g}",
                    group_id=f"group-{g}",
                    token_ids=ids,
                    loss_mask=mask,
                    logprobs=[0.0] * len(ids),
                    prompt_length=prompt,
                    reward=float(i % 2),
                    turns=turns,
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=330)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--lora", type=int, default=0, help="also LoRA at this rank")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/update.json"))
    args = parser.parse_args()

    from gymwire.trainer.grpo import GRPOUpdater
    from gymwire.trainer.model import default_model_dir, set_threads
    from gymwire.trainer.settings import GRPOConfig, LoRAConfig

    set_threads(args.threads)
    batch = episodes(args.groups, args.group_size, args.prompt, args.turns)
    common = {"learning_rate": 1e-5, "beta": 0.0, "token_budget": 4096, "gradient_checkpointing": True}
    configs = {"full rows": GRPOConfig(**common, share_prefix=False), "shared prompt": GRPOConfig(**common)}
    if args.lora:
        lora = LoRAConfig(rank=args.lora, alpha=2 * args.lora)
        configs["LoRA, shared prompt"] = GRPOConfig(**common, lora=lora)
        configs["LoRA, shared, no ckpt"] = GRPOConfig(**{**common, "gradient_checkpointing": False}, lora=lora)
    rows = []
    for name, config in configs.items():
        updater = GRPOUpdater(default_model_dir(), config)
        updater.step(batch[: args.group_size])  # warm-up: first allocations, optimizer state
        started = time.perf_counter()
        metrics = updater.step(batch)
        rows.append(
            {
                "config": name,
                "step_s": time.perf_counter() - started,
                "trained_tokens": metrics["tokens"],
                "microbatches": metrics["microbatches"],
                "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,  # of the process so far
            }
        )
        del updater
    sequence = len(batch[0].token_ids)
    print(f"GRPO step: {len(batch)} episodes of {sequence} tokens ({args.prompt} shared by a group), default model")
    print(f"{'configuration':24s} {'step s':>7s} {'vs full rows':>12s} {'microbatches':>12s}")
    for r in rows:
        print(
            f"{r['config']:24s} {r['step_s']:7.1f} {rows[0]['step_s'] / r['step_s']:11.2f}x {r['microbatches']:12.0f}"
        )
    write_rows(args, rows)


if __name__ == "__main__":
    main()

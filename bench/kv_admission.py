"""Episodes admitted against the KV cache, or all at once: the same evaluation both ways, in one run.

An evaluation starts every episode at once. When their conversations need more KV than the vLLM
engine holds, each turn evicts another's prefix and recomputes its own (trainer/policy/admission.py).
This plays the same held-out episodes (BabyAI hard, each task's own turn limit; or the main job's
TextCraft depth-1 goals, 5 turns; both with the main job's 1,536-token budget) on one engine with the
main job's settings, admitted against its cache (`rollout.kv_admission`, the default) and all at
once, the order alternating over reps, and prints wall time, generated tokens/s and the ratio.
A variant that runs past --limit minutes is stopped there and reported as at least that long.

    python -m bench.kv_admission                      # results/kv_admission.json (~15 min on 2 cores)
    python -m bench.kv_admission --env textcraft -k 4 --reps 2 --out bench/results/kv_admission-textcraft.json
    python -m bench.kv_admission --tasks 4 --reps 1   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace
from pathlib import Path

from bench import write_rows
from gymwire.client import EnvPool
from gymwire.env_servers.local import LocalServer
from gymwire.trainer.config import parse_config
from gymwire.trainer.demo import demo_config
from gymwire.trainer.policy import make_policy
from gymwire.trainer.rollout import EnvConfig, RolloutEngine, TaskRef

# environment -> (difficulty, category, turn limit; 0: each task's own)
WORKLOADS = {"babyai": ("hard", "", 0), "textcraft": ("easy", "depth-1", 5)}


async def play(policy, address: str, args: argparse.Namespace, admitted: bool, config) -> dict:
    async with EnvPool([address]) as pool:
        difficulty, category, max_turns = WORKLOADS[args.env]
        tasks = await pool.list_tasks(args.env, "test", difficulty, category=category, limit=args.tasks)
        rollout = replace(config.eval_rollout(), kv_admission=admitted)
        engine = RolloutEngine(pool, policy, rollout, {args.env: EnvConfig(max_turns=max_turns)})
        jobs = [(TaskRef(args.env, t.id), k) for t in tasks for k in range(args.k)]
        started = time.perf_counter()
        episodes = [engine.episode(ref, f"kv/{ref.task_id}", seed=k) for ref, k in jobs]
        try:
            done = await asyncio.wait_for(asyncio.gather(*episodes), timeout=60 * args.limit)
        except TimeoutError:
            done = None
        wall = time.perf_counter() - started
    row = {"variant": "admitted" if admitted else "all at once", "episodes": len(jobs), "wall_s": round(wall, 1)}
    if done is None:
        row["stopped_after_s"] = round(wall, 1)
    else:
        row["generated_tokens"] = sum(t.generated_tokens for t in done)
        row["tokens"] = sum(len(t.token_ids) for t in done)
        row["tokens_per_s"] = round(row["generated_tokens"] / wall, 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=sorted(WORKLOADS), default="babyai")
    parser.add_argument("--tasks", type=int, default=32, help="held-out tasks")
    parser.add_argument("-k", type=int, default=2, help="episodes per task")
    parser.add_argument("--reps", type=int, default=2, help="runs of each variant, alternating")
    parser.add_argument("--limit", type=float, default=8.0, help="minutes a variant may run before it is stopped")
    parser.add_argument("--out", type=Path, default=Path("bench/results/kv_admission.json"))
    args = parser.parse_args()
    rows = []
    with LocalServer(args.env) as server:
        server.wait()
        # The main job's engine and rollout settings (its config names a TextCraft address; none is dialled).
        config = parse_config(demo_config({"textcraft": server.address}, Path("runs/bench-kv-admission"), steps=1))
        with make_policy("vllm", "smollm2", settings=config.vllm, seed=config.seed) as policy:
            if policy.admission is None:
                raise SystemExit("this vLLM engine reports no KV cache size; nothing to compare")
            capacity = policy.admission.capacity

            async def every_run() -> None:
                for rep in range(args.reps):
                    for admitted in (True, False) if rep % 2 == 0 else (False, True):
                        # Each run starts with a cold cache (on the engine's own thread, where it is driven).
                        policy._executor.submit(policy.llm.reset_prefix_cache).result()
                        row = await play(policy, server.address, args, admitted, config)
                        rows.append({"rep": rep, "kv_cache_tokens": capacity, **row})
                        print(rows[-1], flush=True)

            asyncio.run(every_run())
    line = "{:<12s} {:>4s} {:>9s} {:>10s} {:>9s}"
    print(line.format("variant", "rep", "episodes", "wall s", "tok/s"))
    for r in rows:
        wall = f">{r['wall_s']:.0f}" if "stopped_after_s" in r else f"{r['wall_s']:.0f}"
        print(line.format(r["variant"], str(r["rep"]), str(r["episodes"]), wall, str(r.get("tokens_per_s", "-"))))
    for rep in range(args.reps):
        pair = {r["variant"]: r for r in rows if r["rep"] == rep}
        ratio = pair["all at once"]["wall_s"] / pair["admitted"]["wall_s"]
        bound = "at least " if "stopped_after_s" in pair["all at once"] else ""
        print(f"rep {rep}: admitted is {bound}{ratio:.1f}x faster")
    write_rows(args, rows)


if __name__ == "__main__":
    main()

"""Turn-level credit against episode-level GRPO: the same warm start, seeds and tasks, paired by task.

For one environment tier, one warm start (behaviour cloning on expert episodes) is shared by every
point; each point is (seed, advantage) with `grpo.advantage` set to `episode` (GRPO) or `turn`
(GiGPO's two-level estimate from the servers' state keys). A seed fixes the held-out tasks drawn and
the sampler's seed, so the two methods of one seed start from the same first rollouts and are
evaluated on the same tasks; the warm start is evaluated once per seed, on that seed's tasks. The
settings are the main job's (trainer/demo.py) unless overridden here.

Reported, each with a 95% Student's t interval over held-out tasks (the independent unit):
- every point's gain over the warm start (paired by task);
- per seed, turn minus episode on the same tasks;
- pooled: each task's success averaged over seeds, turn minus episode.
A point's run folder is kept, so an interrupted study resumes where it was (finished points are read
back, an unfinished run resumes from its checkpoint).

    python -m bench.credit --seeds 0 1 2            # results/credit-textcraft.json
    python -m bench.credit --env babyai --seeds 0 1 2
    python -m bench.credit --seeds 0 --steps 1 --eval-tasks 4 -k 1   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

from bench import write_json
from gymwire.client import EnvPool
from gymwire.env_servers.local import LocalServer
from gymwire.trainer import metrics
from gymwire.trainer.config import parse_config
from gymwire.trainer.demo import demo_config
from gymwire.trainer.evaluate import evaluate
from gymwire.trainer.policy import make_policy
from gymwire.trainer.records import read_trajectories
from gymwire.trainer.rollout import RolloutEngine
from gymwire.trainer.train import RunState, Trainer

# The trained tier of each environment: the train split of (difficulty, category), evaluated on its test split.
TIERS = {
    "textcraft": {"difficulty": "easy", "category": "depth-1", "max_turns": 5},
    "babyai": {"difficulty": "easy", "category": "", "max_turns": 10},
}
METHODS = ("episode", "turn")


def point_config(env: str, address: str, run_dir: Path, args: argparse.Namespace, seed: int, method: str) -> dict:
    config = demo_config({env: address}, run_dir, args.steps)
    tier = TIERS[env]
    config["seed"] = seed
    config["stages"][0]["mix"] = [{"env": env, "split": "train", **tier}]
    config["grpo"]["advantage"] = method
    config["eval"].update(
        difficulty=tier["difficulty"], category=tier["category"], tasks_per_env=args.eval_tasks, k=args.k
    )
    return config


def warm_eval_dir(root: Path, seed: int) -> Path:
    """The folder whose eval/warm_start holds the warm start's evaluation on `seed`'s tasks."""
    return root / "warm" / f"seed{seed}"


async def evaluate_warm_start(config: Any, model: Path, out: Path) -> None:
    """The shared warm start's model on this seed's held-out tasks, evaluated as the trainer does."""
    with make_policy("vllm", model, settings=config.vllm, seed=config.seed) as policy:
        async with EnvPool([a for addresses in config.envs.values() for a in addresses]) as pool:
            engine = RolloutEngine(pool, policy, config.eval_rollout(), config.eval_env_configs())
            desc = f"eval warm_start (seed {config.seed})"
            await evaluate(pool, engine, config.eval, out_dir=out, desc=desc, agent_name="warm_start")


def run_point(env: str, address: str, root: Path, args: argparse.Namespace, seed: int, method: str) -> Path:
    """Train one point. The first point behaviour-clones and keeps its warm start (and that evaluation,
    for its seed) for the others; every later point starts from it, evaluated on its own seed's tasks."""
    run_dir = root / f"seed{seed}-{method}"
    config = parse_config(point_config(env, address, run_dir, args, seed, method))
    warm = root / "warm"
    if (warm / "state.json").exists():
        seed_eval = warm_eval_dir(root, seed) / "eval" / "warm_start"
        if not (seed_eval / "results.json").exists():  # written when the evaluation is complete
            asyncio.run(evaluate_warm_start(config, Path(RunState.load(warm).rl_init_model), seed_eval))
        if not (run_dir / "state.json").exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            shutil.copytree(seed_eval, run_dir / "eval" / "warm_start")
            RunState.load(warm).save(run_dir)
    if RunState.load(run_dir).phase != "done":
        Trainer(config, progress=True).run_sync()
    if not (warm / "state.json").exists():  # the first point: keep its warm start for the others
        shutil.copytree(run_dir / "eval" / "warm_start", warm_eval_dir(root, seed) / "eval" / "warm_start")
        state = RunState.load(run_dir)
        state.phase, state.stage, state.step, state.checkpoint = "warm_started", 0, 0, ""
        state.evaluations = ["warm_start"]
        state.save(warm)
    return run_dir


def episodes(run_dir: Path, label: str) -> list[Any]:
    return [t for _, t in read_trajectories(run_dir / "eval" / label / "trajectories.jsonl")]


def final_label(run_dir: Path) -> str:
    return next(p.name for p in sorted((run_dir / "eval").iterdir()) if p.name.startswith("stage-"))


def interval(gain: metrics.PairedGain) -> dict[str, float]:
    return {"gain": gain.gain, "ci95": gain.half_width, "low": gain.low, "high": gain.high, "tasks": gain.tasks}


def summarise(root: Path, seeds: list[int]) -> dict[str, Any]:
    points, per_seed = [], []
    finals: dict[str, dict[int, list[Any]]] = {m: {} for m in METHODS}
    for seed in seeds:
        for method in METHODS:
            run_dir = root / f"seed{seed}-{method}"
            if RunState.load(run_dir).phase != "done":
                continue
            final = episodes(run_dir, final_label(run_dir))
            finals[method][seed] = final
            if (warm_eval_dir(root, seed) / "eval" / "warm_start" / "results.json").exists():
                gain = metrics.paired_gain(episodes(warm_eval_dir(root, seed), "warm_start"), final)
                points.append({"seed": seed, "advantage": method, "vs_warm_start": interval(gain)})
        if seed in finals["episode"] and seed in finals["turn"]:
            gain = metrics.paired_gain(finals["episode"][seed], finals["turn"][seed])
            per_seed.append({"seed": seed, "turn_minus_episode": interval(gain)})
    pooled = None
    both = [s for s in seeds if s in finals["episode"] and s in finals["turn"]]
    if both:
        # Each task's success over all seeds' samples: one paired difference per task.
        gain = metrics.paired_gain(
            [t for s in both for t in finals["episode"][s]], [t for s in both for t in finals["turn"][s]]
        )
        pooled = {"seeds": both, "turn_minus_episode": interval(gain)}
    return {"points": points, "per_seed": per_seed, "pooled": pooled}


def verdict(result: dict[str, float]) -> str:
    if result["low"] > 0:
        return "significant gain"
    if result["high"] < 0:
        return "significant loss"
    return "not significant"


def show(summary: dict[str, Any]) -> None:
    row = "{:<26s} {:>8s} {:>16s} {:>7s}  {}"
    print(row.format("point", "gain", "95% CI", "tasks", ""))
    for p in summary["points"]:
        r = p["vs_warm_start"]
        ci = f"[{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]"
        label = f"seed {p['seed']} {p['advantage']} vs warm"
        print(row.format(label, f"{100 * r['gain']:+.1f}", ci, str(r["tasks"]), verdict(r)))
    rows = [(f"seed {s['seed']} turn - episode", s["turn_minus_episode"]) for s in summary["per_seed"]]
    if summary["pooled"]:
        rows.append(("pooled turn - episode", summary["pooled"]["turn_minus_episode"]))
    for label, r in rows:
        ci = f"[{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]"
        print(row.format(label, f"{100 * r['gain']:+.1f}", ci, str(r["tasks"]), verdict(r)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=sorted(TIERS), default="textcraft")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=5, help="GRPO steps per point")
    parser.add_argument("--eval-tasks", type=int, default=32)
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--run-dir", type=Path, default=None, help="default: runs/bench-credit-ENV")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/credit-ENV.json")
    args = parser.parse_args()
    root = args.run_dir or Path(f"runs/bench-credit-{args.env}")
    out = args.out or Path(f"bench/results/credit-{args.env}.json")
    started = time.time()
    root.mkdir(parents=True, exist_ok=True)
    with LocalServer(args.env, log_path=root / "server.log") as server:
        for seed in args.seeds:
            for method in METHODS:
                run_point(args.env, server.address, root, args, seed, method)
                summary = summarise(root, args.seeds)
                write_json(out, {"args": {k: str(v) for k, v in vars(args).items()}, **summary})
    show(summary)
    print(f"wrote {out} ({(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()

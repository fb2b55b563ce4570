"""Turn-level credit against episode-level GRPO: the same warm start, seeds and tasks, paired by task.

For one environment tier, one warm start (behaviour cloning on expert episodes, then its held-out
evaluation) is shared by every point; each point is (seed, advantage) with `grpo.advantage` set to
`episode` (GRPO) or `turn` (GiGPO's two-level estimate from the servers' state keys). A seed fixes the
tasks drawn and the sampler's seed, so the two methods of one seed start from the same first
rollouts. The settings are the main job's (trainer/demo.py) unless overridden here.

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
import shutil
import time
from pathlib import Path
from typing import Any

from bench import write_json
from gymwire.env_servers.local import LocalServer
from gymwire.trainer import metrics
from gymwire.trainer.config import parse_config
from gymwire.trainer.demo import demo_config
from gymwire.trainer.records import read_trajectories
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


def run_point(env: str, address: str, root: Path, args: argparse.Namespace, seed: int, method: str) -> Path:
    """Train one point; every point after the first starts from the first one's warm start and its evaluation."""
    run_dir = root / f"seed{seed}-{method}"
    if RunState.load(run_dir).phase == "done":
        return run_dir
    warm = root / "warm"
    if (warm / "state.json").exists() and not (run_dir / "state.json").exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(warm / "eval", run_dir / "eval")
        state = RunState.load(warm)
        state.save(run_dir)
    Trainer(parse_config(point_config(env, address, run_dir, args, seed, method)), progress=True).run_sync()
    if not (warm / "state.json").exists():  # the first point: keep its warm start for the others
        warm.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run_dir / "eval" / "warm_start", warm / "eval" / "warm_start")
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
    warm = episodes(root / "warm", "warm_start")
    points, per_seed = [], []
    finals: dict[str, dict[int, list[Any]]] = {m: {} for m in METHODS}
    for seed in seeds:
        for method in METHODS:
            run_dir = root / f"seed{seed}-{method}"
            if RunState.load(run_dir).phase != "done":
                continue
            final = episodes(run_dir, final_label(run_dir))
            finals[method][seed] = final
            gain = metrics.paired_gain(warm, final)
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

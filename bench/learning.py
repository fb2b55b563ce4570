"""Does the trainer learn? Held-out success of the base model, after the warm start, and along GRPO.

One easy tier of one environment (default: TextCraft depth-1 goals), a real server, the default
model on CPU: `gymwire.trainer.Trainer` runs base evaluation -> behaviour cloning on expert episodes
of the training split -> GRPO steps with an evaluation every few steps, all on held-out test tasks.
Prints a table with 95% intervals (tasks as the independent unit) and, for every evaluation after the
warm start, the paired difference to the warm start on the same tasks (its interval is much tighter
than the difference of two unpaired intervals). Writes the curve as JSON and PNG.

    python -m bench.learning --seed 1              # results/learning.json (37 min on 2 cores, vLLM rollouts)
    python -m bench.learning --loss-normalization tokens   # results/learning-seed0-tokens.json
    python -m bench.learning --steps 2 --eval-tasks 4 --quick-demos 8   # smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gymwire.env_servers.local import LocalServer
from gymwire.trainer.config import parse_config
from gymwire.trainer.train import Trainer


def learning_config(address: str, args: argparse.Namespace) -> dict:
    tier = {"env": "textcraft", "split": "train", "category": args.category, "max_turns": args.max_turns}
    return {
        "run_dir": str(args.run_dir),
        "envs": {"textcraft": address},
        "seed": args.seed,
        "model": {"name": "smollm2", "backend": args.backend, "threads": args.threads},
        "rollout": {
            "group_size": args.group_size,
            "batch_tasks": args.batch_tasks,
            "max_new_tokens": 40,
            "temperature": args.temperature,
            "max_total_tokens": 1536,
        },
        "grpo": {
            "learning_rate": args.lr,
            "beta": 0.0,
            "token_budget": 4096,
            "loss_normalization": args.loss_normalization,
        },
        "warm_start": {"episodes": args.quick_demos, "epochs": args.sft_epochs, "learning_rate": args.sft_lr},
        "stages": [{"name": "grpo", "steps": args.steps, "mix": [tier]}],
        "eval": {
            "split": "test",
            "category": args.category,
            "tasks_per_env": args.eval_tasks,
            "k": args.k,
            "every_steps": args.eval_every,
            "max_new_tokens": 40,
            "temperature": args.temperature,
        },
        "checkpoint": {"every": 1},
    }


def paired_gain(run_dir: Path, before: str, after: str) -> tuple[float, float, int]:
    """Mean per-task change in success from `before` to `after` and its 95% half-width (paired by task)."""
    from gymwire.trainer import metrics
    from gymwire.trainer.records import read_trajectories

    def episodes(label: str) -> list:
        return [t for _, t in read_trajectories(run_dir / "eval" / label / "trajectories.jsonl")]

    result = metrics.paired_gain(episodes(before), episodes(after))
    return result.gain, result.half_width, result.tasks


def curve(run_dir: Path, steps: int) -> list[dict]:
    """One point per evaluation, in run order, with the interval of avg@k."""
    from gymwire.trainer.report import _eval_order

    points = []
    for label in _eval_order(run_dir):
        rows = json.loads((run_dir / "eval" / label / "results.json").read_text())["rows"]
        episodes = sum(r["episodes"] for r in rows)
        avg = sum(r["avg_at_k"] * r["episodes"] for r in rows) / max(episodes, 1)
        ci = max((r["avg_ci"] for r in rows), default=0.0)
        step = {"base": None, "warm_start": 0}.get(label, steps)
        if "-step-" in label:
            step = int(label.rsplit("-", 1)[1])
        point = {
            "label": label,
            "grpo_step": step,
            "avg_at_k": avg,
            "ci95": ci,
            "episodes": episodes,
            "tasks": sum(r["tasks"] for r in rows),
            "mean_turns": rows[0]["mean_turns"] if rows else 0,
            "invalid_rate": rows[0]["invalid_rate"] if rows else 0,
        }
        if step and (run_dir / "eval" / "warm_start").exists():
            gain, gain_ci, paired = paired_gain(run_dir, "warm_start", label)
            point.update(gain_vs_warm_start=gain, gain_ci95=gain_ci, paired_tasks=paired)
        points.append(point)
    return points


def plot(points: list[dict], out: Path) -> None:
    """Left: held-out success with its interval over tasks. Right: the paired gain over the warm start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    xs = [p["grpo_step"] for p in points[1:]]
    left.errorbar(
        xs,
        [100 * p["avg_at_k"] for p in points[1:]],
        yerr=[100 * p["ci95"] for p in points[1:]],
        marker="o",
        capsize=3,
        label="warm start + GRPO",
    )
    left.axhline(100 * points[0]["avg_at_k"], color="grey", linestyle=":", label="base model")
    left.set_xlabel("GRPO steps after the warm start")
    left.set_ylabel("held-out success avg@k (%)")
    left.legend()
    paired = [p for p in points if "gain_ci95" in p]
    right.errorbar(
        [0] + [p["grpo_step"] for p in paired],
        [0] + [100 * p["gain_vs_warm_start"] for p in paired],
        yerr=[0] + [100 * p["gain_ci95"] for p in paired],
        marker="o",
        capsize=3,
        color="tab:green",
    )
    right.axhline(0, color="grey", linestyle=":")
    right.set_xlabel("GRPO steps after the warm start")
    right.set_ylabel("gain over the warm start, same tasks (points)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bench-learning"))
    parser.add_argument("--category", default="depth-1")
    parser.add_argument("--backend", choices=("vllm", "hf"), default="vllm", help="what samples rollouts")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--eval-tasks", type=int, default=40)
    parser.add_argument("-k", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--batch-tasks", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--loss-normalization", choices=("tokens", "sequences"), default="sequences")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--quick-demos", type=int, default=24, help="expert episodes for the warm start")
    parser.add_argument("--sft-epochs", type=int, default=2)
    parser.add_argument("--sft-lr", type=float, default=1e-4)
    parser.add_argument("--max-turns", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/learning.json"))
    args = parser.parse_args()

    started = time.time()
    args.run_dir.mkdir(parents=True, exist_ok=True)
    with LocalServer("textcraft", log_path=args.run_dir / "server.log") as server:
        Trainer(parse_config(learning_config(server.address, args)), progress=True).run_sync()
    points = curve(args.run_dir, args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    plot(points, png)
    args.out.write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "points": points,
                "minutes": (time.time() - started) / 60,
            },
            indent=2,
        )
    )
    print(f"\nlearning on textcraft {args.category}: held-out avg@{args.k}, 95% interval over tasks")
    print(
        f"{'evaluation':28s} {'GRPO step':>9s} {'avg@k':>7s} {'± ci95':>7s} {'episodes':>8s} {'invalid':>7s} "
        f"{'vs warm start (paired)':>22s}"
    )
    for p in points:
        step = "-" if p["grpo_step"] is None else str(p["grpo_step"])
        gain = f"{100 * p['gain_vs_warm_start']:+6.1f} ± {100 * p['gain_ci95']:.1f}" if "gain_ci95" in p else ""
        print(
            f"{p['label']:28s} {step:>9s} {100 * p['avg_at_k']:6.1f}% {100 * p['ci95']:6.1f}  {p['episodes']:8d} "
            f"{100 * p['invalid_rate']:6.1f}% {gain:>22s}"
        )
    print(f"wrote {args.out} and {png} ({(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()

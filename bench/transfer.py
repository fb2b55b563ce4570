"""What training on one tier does elsewhere: a finished main-job run's warm start and final model on
tiers and environments it never trained on, paired by task.

The main job (trainer/demo.py) trains on TextCraft's easy tier, depth-1 goals only. This evaluates
its two models, `warm_start/model` (behaviour cloning) and `final_model` (after GRPO), on the same
held-out tasks of each target below, with the same seeds, and reports GRPO's gain over the warm
start per target with a paired 95% interval over tasks:

* within the environment, across difficulty: TextCraft easy depth-2 goals and the hard tier
  (depth 3-4), the paper's first finding at CPU scale (train easy, evaluate easy and hard);
* across environments: BabyAI's easy tier, which neither model saw (train on A, evaluate on B).

The trained tier itself is read from the run's own evaluations. Both models are sampled by vLLM with
the main job's engine settings.

    python -m bench.transfer --run-dir runs/demo      # after `gymwire demo`; results/transfer.json
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from bench import write_json
from bench.credit import episodes as episodes_of
from bench.credit import final_label, interval, verdict
from gymwire.client import EnvPool
from gymwire.env_servers.local import LocalServer
from gymwire.trainer import metrics
from gymwire.trainer.config import parse_config
from gymwire.trainer.demo import demo_config
from gymwire.trainer.evaluate import evaluate
from gymwire.trainer.policy import make_policy
from gymwire.trainer.rollout import EnvConfig, RolloutEngine
from gymwire.trainer.settings import EvalSpec

# name -> (environment, difficulty, category, turn limit)
TARGETS = {
    "textcraft easy depth-2": ("textcraft", "easy", "depth-2", 8),
    "textcraft hard": ("textcraft", "hard", "", 10),
    "babyai easy": ("babyai", "easy", "", 10),
}
MODELS = {"warm_start": "warm_start/model", "final": "final_model"}


async def play(model: Path, config: Any, addresses: dict[str, str], args: argparse.Namespace, out: Path) -> dict:
    """Every target's episodes of one model, evaluated (and resumed) in `out`/<target>."""
    results = {}
    with make_policy("vllm", model, settings=config.vllm, seed=config.seed) as policy:
        async with EnvPool(list(addresses.values())) as pool:
            for name, (env, difficulty, category, max_turns) in TARGETS.items():
                spec = EvalSpec([env], "test", difficulty, category, args.tasks, args.k, config.seed)
                engine = RolloutEngine(pool, policy, config.eval_rollout(), {env: EnvConfig(max_turns=max_turns)})
                result = await evaluate(pool, engine, spec, out_dir=out / name.replace(" ", "-"), desc=name)
                results[name] = result.trajectories
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True, help="a finished `gymwire demo` run")
    parser.add_argument("--tasks", type=int, default=32, help="held-out tasks per target")
    parser.add_argument("-k", type=int, default=2, help="samples per task")
    parser.add_argument("--out", type=Path, default=Path("bench/results/transfer.json"))
    args = parser.parse_args()
    started = time.time()
    envs = sorted({env for env, *_ in TARGETS.values()})
    servers = [LocalServer(env, log_path=args.run_dir / f"transfer-{env}.log") for env in envs]
    try:
        for server in servers:
            server.wait()
        addresses = {s.env: s.address for s in servers}
        config = parse_config(demo_config({"textcraft": addresses["textcraft"]}, args.run_dir, steps=1))
        episodes = {
            label: asyncio.run(play(args.run_dir / path, config, addresses, args, args.run_dir / "transfer" / label))
            for label, path in MODELS.items()
        }
    finally:
        for server in servers:
            server.stop()

    trained = metrics.paired_gain(
        episodes_of(args.run_dir, "warm_start"), episodes_of(args.run_dir, final_label(args.run_dir))
    )
    rows = [{"target": "textcraft easy depth-1 (trained)", **interval(trained)}]
    for name in TARGETS:
        before, after = episodes["warm_start"][name], episodes["final"][name]
        rows.append({"target": name, **interval(metrics.paired_gain(before, after))})
        for label in MODELS:
            rows[-1][f"{label}_success"] = sum(t.success for t in episodes[label][name]) / len(episodes[label][name])
    line = "{:<34s} {:>7s} {:>16s} {:>6s}  {}"
    print(line.format("GRPO minus warm start, on", "gain", "95% CI", "tasks", ""))
    for r in rows:
        ci = f"[{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]"
        print(line.format(r["target"], f"{100 * r['gain']:+.1f}", ci, str(r["tasks"]), verdict(r)))
    write_json(args.out, {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows})
    print(f"wrote {args.out} ({(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()

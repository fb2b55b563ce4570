"""What training on one tier does elsewhere: a finished run's warm start and final model on tiers and
environments it never trained on, paired by task.

A run trained on one environment's easy tier (the main job, trainer/demo.py: TextCraft easy, depth-1
goals; or a `bench.credit` point: BabyAI easy) has two models, its warm start (behaviour cloning,
`rl_init_model` in its state.json) and `final_model` (after GRPO). This evaluates both on the same
held-out tasks of each target below, with the same seeds, and reports GRPO's gain over the warm start
per target with a paired 95% interval over tasks:

* within the environment, across difficulty (the paper's first finding at CPU scale: train easy,
  evaluate easy and hard): TextCraft easy depth-2 goals and the hard tier (depth 3-4); BabyAI hard;
* across environments (train on A, evaluate on B): BabyAI easy for TextCraft, and back.

The trained tier itself is read from the run's own evaluations. Both models are sampled by vLLM with
the main job's engine settings.

    python -m bench.transfer --run-dir runs/demo      # after `gymwire demo`; results/transfer.json
    python -m bench.transfer --run-dir runs/bench-credit-babyai/seed0-turn --out bench/results/transfer-babyai.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from gymwire.trainer.train import RunState

# trained environment -> target name -> (environment, difficulty, category, turn limit; 0: the task's own)
TARGETS = {
    "textcraft": {
        "textcraft easy depth-2": ("textcraft", "easy", "depth-2", 8),
        "textcraft hard": ("textcraft", "hard", "", 10),
        "babyai easy": ("babyai", "easy", "", 10),
    },
    "babyai": {
        "babyai hard": ("babyai", "hard", "", 0),
        "textcraft easy depth-1": ("textcraft", "easy", "depth-1", 5),
    },
}


def trained_tier(run_dir: Path) -> tuple[str, str]:
    """The one environment a run trained on and its tier's name, from the run's recorded config."""
    mix = [entry for stage in json.loads((run_dir / "config.json").read_text())["stages"] for entry in stage["mix"]]
    tiers = {(e["env"], " ".join(filter(None, (e["env"], e["difficulty"], e["category"])))) for e in mix}
    if len(tiers) != 1 or next(iter(tiers))[0] not in TARGETS:
        raise SystemExit(f"{run_dir} trained on {sorted(tiers)}; this takes a run on one tier of {sorted(TARGETS)}")
    return tiers.pop()


async def play(
    model: Path, config: Any, targets: dict, addresses: dict[str, str], args: argparse.Namespace, out: Path
) -> dict:
    """Every target's episodes of one model, evaluated (and resumed) in `out`/<target>."""
    results = {}
    with make_policy("vllm", model, settings=config.vllm, seed=config.seed) as policy:
        async with EnvPool(list(addresses.values())) as pool:
            for name, (env, difficulty, category, max_turns) in targets.items():
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
    trained, tier = trained_tier(args.run_dir)
    targets = TARGETS[trained]
    models = {"warm_start": Path(RunState.load(args.run_dir).rl_init_model), "final": args.run_dir / "final_model"}
    envs = sorted({trained, "textcraft"} | {env for env, *_ in targets.values()})
    servers = [LocalServer(env, log_path=args.run_dir / f"transfer-{env}.log") for env in envs]
    try:
        for server in servers:
            server.wait()
        addresses = {s.env: s.address for s in servers}
        # The main job's engine and rollout settings (its TextCraft stage needs a TextCraft address).
        config = parse_config(demo_config(addresses, args.run_dir, steps=1))
        episodes = {
            label: asyncio.run(play(path, config, targets, addresses, args, args.run_dir / "transfer" / label))
            for label, path in models.items()
        }
    finally:
        for server in servers:
            server.stop()

    final = final_label(args.run_dir)
    held_in = metrics.paired_gain(episodes_of(args.run_dir, "warm_start"), episodes_of(args.run_dir, final))
    rows = [{"target": f"{tier} (trained)", **interval(held_in)}]
    for name in targets:
        before, after = episodes["warm_start"][name], episodes["final"][name]
        rows.append({"target": name, **interval(metrics.paired_gain(before, after))})
        for label in models:
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

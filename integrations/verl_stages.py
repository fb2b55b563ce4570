"""A gymwire run config's stages as successive verl runs.

    python -m gymwire.integrations.verl_stages --config configs/paper/sequential-webshop-textcraft.yaml \
        --verl-config examples/verl/gymwire_grpo.yaml --out runs/verl-paper [--dry-run]

For each stage, in order:
1. the tasks gymwire's own trainer would draw for each of its steps (the same seeded `TaskStream`)
   are written as a verl dataset (parquet): one row per task, naming the task and its environment
   settings in `extra_info.gymwire`, `agent_name: gymwire_agent`;
2. `python -m verl.trainer.main_ppo` runs with the user's verl config plus the stage's overrides:
   its data file, `rollout.n` = the group size, `train_batch_size` = tasks per step, the agent loop
   (its servers, and `max_new_tokens` as each turn's token limit), the `gymwire_grpo` advantage
   estimator (GRPO that leaves aborted episodes out of the baseline; `gymwire_gigpo` under
   `grpo: {advantage: turn}`), `trainer.total_training_steps`
   = the steps of this and every earlier stage, and the run config's checkpoint policy
   (`checkpoint.every` -> `save_freq`, `keep_last` -> `max_actor_ckpt_to_keep`, `weights_only` ->
   no optimizer state in the checkpoints).

All stages share one checkpoint folder with `resume_mode: auto`, so each stage starts from the
previous stage's weights (and optimizer state, unless `weights_only`); verl also saves at each
stage's last step. verl also restores its data loader's position, so a
stage's file holds every earlier stage's rows first (in order, `shuffle: false`): the restored
position lands exactly on the stage's own first task.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gymwire.client import ChannelOptions, EnvPool
from gymwire.trainer.config import RunConfig, Stage, load_config
from gymwire.trainer.train import TaskStream
from gymwire.trainer.turn_credit import GIGPO_GAMMA, GIGPO_WEIGHT

from .episodes import task_key

# The names gymwire.integrations.verl registers its agent loop and advantage estimator under: defined here,
# where verl need not be importable, and imported there.
AGENT_NAME = "gymwire_agent"
ADVANTAGE_ESTIMATOR = "gymwire_grpo"  # GRPO whose group baselines leave out aborted episodes
TURN_ADVANTAGE_ESTIMATOR = "gymwire_gigpo"  # GiGPO's episode-plus-step advantage (trainer/turn_credit.py)
SETUP_HOOK = "gymwire.integrations.verl.setup"  # imported by every Ray worker of the verl run


@dataclass(frozen=True)
class StagePlan:
    name: str
    data_file: Path
    rows: int  # rows of this stage alone
    total_steps: int  # steps of this and every earlier stage
    command: list[str]


def stage_rows(stage: Stage, refs_by_step: list[list[Any]]) -> list[dict[str, Any]]:
    """verl dataset rows for one stage: one per drawn task, in step order."""
    settings = {m.env: m for m in stage.mix}
    rows: list[dict[str, Any]] = []
    for step, refs in enumerate(refs_by_step):
        for ref in refs:
            entry = settings[ref.env]
            if entry.history_turns is not None:
                raise ValueError(f"stage {stage.name}: history_turns cannot be trained through verl (one sequence)")
            key = task_key(ref)
            rows.append(
                {
                    "data_source": f"gymwire/{ref.env}",
                    "agent_name": AGENT_NAME,
                    "prompt": [{"role": "user", "content": key}],
                    "extra_info": {
                        "index": len(rows),
                        "gymwire": {
                            "task": key,
                            "stage": stage.name,
                            "step": step,
                            "max_turns": entry.max_turns,
                            "show_valid_actions": entry.show_valid_actions,
                        },
                    },
                }
            )
    return rows


async def draw_stages(config: RunConfig) -> list[list[list[Any]]]:
    """Every stage's tasks, step by step, as gymwire's trainer draws them."""
    token = config.token or os.environ.get("GYMWIRE_TOKEN")
    async with EnvPool(config.addresses(), ChannelOptions(token=token)) as pool:
        stream = TaskStream(pool, config.seed)
        return [
            [await stream.draw(stage.name, step, stage.mix, config.rollout.batch_tasks) for step in range(stage.steps)]
            for stage in config.stages
        ]


def write_agent_loop_config(config: RunConfig, path: Path) -> None:
    """The agent-loop YAML verl loads: the gymwire agent loop and the servers of the run config."""
    entry = {
        "name": AGENT_NAME,
        "_target_": "gymwire.integrations.verl.GymwireAgentLoop",
        "servers": {env: list(addrs) for env, addrs in config.envs.items()},
        "max_turn_tokens": config.rollout.max_new_tokens,
        "abort_retries": config.rollout.abort_retries,
    }
    if config.rollout.system_prompt:
        entry["system_prompt"] = config.rollout.system_prompt
    path.write_text(yaml.safe_dump([entry], sort_keys=False))


def advantage_estimator(config: RunConfig) -> str:
    """verl's estimator for the run config's `grpo.advantage`; gymwire_gigpo has GiGPO's gamma and weight."""
    grpo = config.grpo
    if grpo.advantage != "turn":
        return ADVANTAGE_ESTIMATOR
    if (grpo.turn_gamma, grpo.turn_weight) != (GIGPO_GAMMA, GIGPO_WEIGHT):
        raise ValueError(
            f"under verl, {TURN_ADVANTAGE_ESTIMATOR} uses turn_gamma {GIGPO_GAMMA} and turn_weight {GIGPO_WEIGHT}; "
            f"the run config sets {grpo.turn_gamma} and {grpo.turn_weight}"
        )
    return TURN_ADVANTAGE_ESTIMATOR


def stage_overrides(config: RunConfig, data_file: Path, total_steps: int, agent_loops: Path, out: Path) -> list[str]:
    """The hydra overrides that make one verl run train one gymwire stage."""
    rollout = config.rollout
    checkpoint = config.checkpoint
    # every 0: only at the end of each stage (verl saves at a run's last step whatever save_freq is)
    save_freq = checkpoint.every or total_steps
    contents = ["actor_rollout_ref.actor.checkpoint.save_contents=[model,extra]"] if checkpoint.weights_only else []
    return [
        f"data.train_files={data_file}",
        f"data.val_files={data_file}",
        f"data.train_batch_size={rollout.batch_tasks}",
        "data.shuffle=False",
        "data.return_raw_chat=True",
        f"algorithm.adv_estimator={advantage_estimator(config)}",
        f"++ray_kwargs.ray_init.runtime_env.worker_process_setup_hook={SETUP_HOOK}",
        f"actor_rollout_ref.rollout.n={rollout.group_size}",
        f"actor_rollout_ref.rollout.temperature={rollout.temperature}",
        f"actor_rollout_ref.rollout.top_p={rollout.top_p}",
        "actor_rollout_ref.rollout.mode=async",
        f"actor_rollout_ref.rollout.agent.agent_loop_config_path={agent_loops}",
        f"actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_NAME}",
        f"trainer.total_training_steps={total_steps}",
        f"trainer.default_local_dir={out / 'checkpoints'}",
        "trainer.resume_mode=auto",
        f"trainer.save_freq={save_freq}",
        f"trainer.max_actor_ckpt_to_keep={checkpoint.keep_last}",
        *contents,
        "trainer.test_freq=-1",
        "trainer.val_before_train=False",
    ]


def plan(config: RunConfig, verl_config: Path, out: Path, drawn: list[list[list[Any]]]) -> list[StagePlan]:
    """Write every stage's dataset and the agent-loop YAML; return the verl command of each stage."""
    from datasets import Dataset

    out.mkdir(parents=True, exist_ok=True)
    agent_loops = out / "agent_loops.yaml"
    write_agent_loop_config(config, agent_loops)
    plans: list[StagePlan] = []
    rows: list[dict[str, Any]] = []
    total = 0
    for stage, refs_by_step in zip(config.stages, drawn, strict=True):
        own = stage_rows(stage, refs_by_step)
        rows = rows + own
        total += stage.steps
        data_file = out / f"stage-{len(plans) + 1}-{stage.name}.parquet"
        Dataset.from_list(rows).to_parquet(str(data_file))
        command = [
            sys.executable,
            "-m",
            "verl.trainer.main_ppo",
            f"--config-path={verl_config.resolve().parent}",
            f"--config-name={verl_config.stem}",
            *stage_overrides(config, data_file.resolve(), total, agent_loops.resolve(), out.resolve()),
        ]
        plans.append(StagePlan(stage.name, data_file, len(own), total, command))
    return plans


def checkpointed_step(checkpoints: Path) -> int:
    """The global step of verl's newest complete checkpoint, 0 without one. verl writes this tracker file
    after the checkpoint itself, so a stage killed mid-save resumes from the one before."""
    try:
        return int((checkpoints / "latest_checkpointed_iteration.txt").read_text().strip())
    except (FileNotFoundError, ValueError):
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a gymwire run config (its envs, rollout and stages)")
    parser.add_argument("--verl-config", required=True, help="the verl config (model, actor, rollout engine, GPUs)")
    parser.add_argument("--out", required=True, help="folder for the datasets, agent-loop YAML and checkpoints")
    parser.add_argument("--dry-run", action="store_true", help="write the datasets, print the commands, run nothing")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    plans = plan(config, Path(args.verl_config), Path(args.out), asyncio.run(draw_stages(config)))
    held = checkpointed_step(Path(args.out) / "checkpoints")
    for number, stage in enumerate(plans, 1):
        print(f"stage {number} {stage.name}: {stage.rows} tasks in {stage.data_file}, up to step {stage.total_steps}")
        if stage.total_steps <= held:
            print(f"  done: verl's newest checkpoint is at step {held}", flush=True)
            continue
        if held > (plans[number - 2].total_steps if number > 1 else 0):
            print(f"  resumes from verl's checkpoint at step {held} (resume_mode=auto)")
        print("  " + shlex.join(stage.command), flush=True)
        if args.dry_run:
            continue
        done = subprocess.run(stage.command, check=False)
        if done.returncode != 0:
            print(f"stage {stage.name} failed (exit {done.returncode}); rerun to resume", file=sys.stderr)
            return done.returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

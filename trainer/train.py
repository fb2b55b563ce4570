"""The training run: base evaluation, optional warm start, GRPO stages, evaluation after every stage.

Resumable: the run folder holds `state.json` (phase, the position right after the newest checkpoint,
that checkpoint) and `checkpoints/step-N/` (weights, optimizer unless weights_only, step; the newest
`keep_last`). state.json only ever names a position a checkpoint holds, so a run killed at any moment
restarts at the step after its newest checkpoint; what the killed run wrote beyond it is set aside
(`trainer/resume.py`). The task stream and the sampling seeds of step s of a stage are made of (run
seed, stage, s), so the resumed run replays those steps exactly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gymwire.client import ChannelOptions, EnvPool
from gymwire.trainer.config import MixEntry, RunConfig, Stage, env_configs
from gymwire.trainer.console import Console, duration, resolve
from gymwire.trainer.evaluate import evaluate
from gymwire.trainer.faults import kill_point
from gymwire.trainer.records import write_trajectory
from gymwire.trainer.resume import set_aside_uncovered, write_position
from gymwire.trainer.rollout import RolloutEngine, TaskRef
from gymwire.trainer.trackers import Trackers
from gymwire.trainer.types import Trajectory

if TYPE_CHECKING:
    from gymwire.trainer.distributed import Distributed
    from gymwire.trainer.policy import Policy
    from gymwire.trainer.updater import Updater

log = logging.getLogger("gymwire.trainer")


@dataclass
class RunState:
    """Where a run is. Written atomically, and only at positions a checkpoint holds (a checkpoint,
    a stage boundary, a finished evaluation there), so a restart continues exactly there."""

    phase: str = "start"  # start -> warm_started -> training -> done
    stage: int = 0
    step: int = 0  # steps of `stage` done (in memory, the live count; on disk, the checkpoint's)
    rl_init_model: str = ""  # the model GRPO started from (also the KL reference)
    checkpoint: str = ""  # the newest complete checkpoint, relative to the run folder ("" = none yet)
    evaluations: list[str] = field(default_factory=list)  # labels of finished evaluations

    @classmethod
    def load(cls, run_dir: Path) -> RunState:
        path = run_dir / "state.json"
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, run_dir: Path) -> None:
        tmp = run_dir / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, run_dir / "state.json")


class TaskStream:
    """Deterministic tasks for each (stage, step): weighted by the stage's mix, seeded, resumable."""

    def __init__(self, pool: EnvPool, seed: int):
        self.pool = pool
        self.seed = seed
        self._lists: dict[tuple[str, str, str, str], list[str]] = {}

    async def tasks(self, entry: MixEntry) -> list[str]:
        key = (entry.env, entry.split, entry.difficulty, entry.category)
        if key not in self._lists:
            listed = await self.pool.list_tasks(entry.env, entry.split, entry.difficulty, entry.category)
            if not listed:
                raise ValueError(
                    f"{entry.env} lists no task for split={entry.split!r} "
                    f"difficulty={entry.difficulty!r} category={entry.category!r}"
                )
            self._lists[key] = sorted(t.id for t in listed)
        return self._lists[key]

    async def draw(self, stage: str, step: int, mix: list[MixEntry], count: int) -> list[TaskRef]:
        rng = random.Random(f"{self.seed}/{stage}/{step}")
        refs = []
        for _ in range(count):
            entry = rng.choices(mix, weights=[m.weight for m in mix])[0]
            refs.append(TaskRef(entry.env, rng.choice(await self.tasks(entry))))
        return refs


class Trainer:
    """`progress`: a line per phase on the console (trainer/console.py); False: silent. The metrics go
    to metrics.jsonl and to the trackers of `config.report_to` (trainer/trackers.py)."""

    def __init__(self, config: RunConfig, progress: bool | Console = True, dist: Distributed | None = None):
        self.config = config
        self.run_dir = Path(config.run_dir)
        self.console = resolve(progress)
        self.trackers: Trackers | None = None
        self.state = RunState.load(self.run_dir)
        self.resuming = (self.run_dir / "state.json").exists() and self.state.phase != "done"
        self._held = (self.state.stage, self.state.step)  # the position the newest checkpoint holds
        self.dist = dist  # under torchrun: this is rank 0, and the update is sharded over every rank

    # -- set-up -------------------------------------------------------------------------------

    async def _connect(self) -> EnvPool:
        token = self.config.token or os.environ.get("GYMWIRE_TOKEN")
        pool = await EnvPool(self.config.addresses(), ChannelOptions(token=token)).connect()
        for name, addresses in self.config.envs.items():
            served = {c.address for c in pool.replicas.get(name, [])}
            wrong = [a for a in addresses if a not in served]
            if wrong:
                actual = {c.address: n for n, cs in pool.replicas.items() for c in cs}
                raise ValueError(f"envs.{name}: {wrong[0]} serves {actual.get(wrong[0])!r}, not {name!r}")
        return pool

    async def _evaluate(self, pool: EnvPool, policy: Policy, label: str, trained: bool = True) -> None:
        """Evaluate and record `label`. `trained`: of GRPO-trained weights, whose position is stored
        beside the results so a resume from an older checkpoint sets them aside."""
        if label in self.state.evaluations:
            return
        engine = RolloutEngine(pool, policy, self.config.eval_rollout(), self.config.eval_env_configs())
        out = self.run_dir / "eval" / label
        if trained:
            write_position(out, self.state.stage, self.state.step)
        result = await evaluate(
            pool, engine, self.config.eval, out_dir=out, progress=self.console, desc=f"eval {label}", agent_name=label
        )
        log.info("evaluation %s:\n%s", label, result.markdown())
        if self.trackers:
            # The base model's own curve point, where a warm start gives GRPO another starting point.
            prefix = "eval_base" if label == "base" and self.config.warm_start is not None else "eval"
            self.trackers.log_eval(result.rows, self._global_step(), prefix)
        self.state.evaluations.append(label)
        if (self.state.stage, self.state.step) == self._held:
            self.state.save(self.run_dir)
        # else: recorded with the next checkpoint; a resume from an older one sets these results aside

    # -- phases -------------------------------------------------------------------------------

    async def _warm_start(self, pool: EnvPool, model_dir: Path, tokenizer: Any) -> Path:
        from gymwire.trainer.demonstrations import collect_demonstrations
        from gymwire.trainer.sft import behaviour_clone

        ws = self.config.warm_start
        assert ws is not None
        mix = ws.mix or self.config.stages[0].mix
        stream = TaskStream(pool, self.config.seed)
        refs = await stream.draw("warm_start", 0, mix, ws.episodes)
        with self.console.phase("demonstrations", total=len(refs)) as phase:
            demos = await collect_demonstrations(
                pool,
                refs,
                tokenizer,
                env_configs(mix),
                self.config.rollout.max_total_tokens,
                self.config.rollout.system_prompt,
                phase=phase,
            )
            phase.finish(f"{len(demos)} of {len(refs)} expert episodes kept (solved, within the context)")
        if not demos:
            raise RuntimeError("the expert solved none of the warm-start tasks; cannot clone behaviour")
        log.info("warm start: %d expert demonstrations", len(demos))
        out = self.run_dir / "warm_start" / "model"
        with self.console.phase("behaviour cloning") as phase:
            model = behaviour_clone(model_dir, demos, out, epochs=ws.epochs, lr=ws.learning_rate, phase=phase)
        if self.trackers:
            self.trackers.log({**phase.values, "warm_start/demonstrations": len(demos)}, 0)
        return Path(model)

    async def run(self) -> RunState:
        from gymwire.trainer.model import return_large_frees_to_os, set_threads

        cfg = self.config
        return_large_frees_to_os()  # phases must not stack on the heap the ones before left behind
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        if cfg.model.threads:
            set_threads(cfg.model.threads)
        if self.resuming:
            set_aside_uncovered(self.run_dir, self.state.stage, self.state.step, self.state.checkpoint)
        if cfg.report_to:
            # A resumed run replays the steps after its checkpoint: TensorBoard drops what was logged from there.
            purge = self._global_step() + 1 if self.resuming else None
            self.trackers = Trackers(cfg.report_to, self.run_dir, config=asdict(cfg), purge_step=purge)
        try:
            await self._run()
        except BaseException:
            self.console.end_line()  # the error starts below the line in place, which stays as it was
            raise
        finally:
            if self.trackers is not None:
                self.trackers.close()
        return self.state

    async def _run(self) -> None:
        from gymwire.trainer.model import resolve_model

        cfg = self.config
        with self.console.phase("servers") as phase:
            pool = await self._connect()
            phase.finish(", ".join(f"{n} ({len(a)})" if len(a) > 1 else n for n, a in cfg.envs.items()) + " ready")
        policy: Policy | None = None
        try:
            base_dir = resolve_model(cfg.model.name)
            if self.state.phase == "start":
                if cfg.eval.base:
                    with self.console.phase("model") as phase:
                        phase.update(f"loading {base_dir.name} ({cfg.model.backend})", force=True)
                        policy = self._open_policy(base_dir)
                        phase.update(f"{base_dir.name} ({cfg.model.backend})")
                    await self._evaluate(pool, policy, "base", trained=False)
                    if policy.samples_live_model:  # training samples with the updater's own model
                        policy.close()
                        policy = None
                init = base_dir
                if cfg.warm_start is not None:
                    init = await self._warm_start(pool, base_dir, base_policy_tokenizer(base_dir))
                self.state.rl_init_model = str(init)
                self.state.phase = "warm_started"
                self.state.save(self.run_dir)
            with self.console.phase("model") as phase:
                start = Path(self.state.rl_init_model)
                shown = start.relative_to(self.run_dir) if start.is_relative_to(self.run_dir) else start.name
                phase.update(f"loading {shown} for GRPO", force=True)
                updater = self._updater()
                if self.state.checkpoint:
                    updater.load(self.run_dir / self.state.checkpoint)
                policy = self._training_policy(updater, policy)
                held = f", resumed at {self.state.checkpoint}" if self.state.checkpoint else ""
                phase.update(f"{shown} for GRPO{held}")
            if cfg.warm_start is not None:
                await self._evaluate(pool, policy, "warm_start", trained=False)
            self.state.phase = "training"
            stream = TaskStream(pool, cfg.seed)
            while self.state.stage < len(cfg.stages):
                stage = cfg.stages[self.state.stage]
                await self._train_stage(pool, stage, stream, updater, policy)
                await self._evaluate(pool, policy, f"stage-{self.state.stage}-{stage.name}")
                self.state.stage += 1
                self.state.step = 0
                self._held = (self.state.stage, 0)  # the stage's last checkpoint holds the next one's start
                self.state.save(self.run_dir)
            self.state.phase = "done"
            self.state.save(self.run_dir)
            updater.export(self.run_dir / "final_model")
        finally:
            if policy is not None:
                policy.close()
            await pool.close()
        from gymwire.trainer.report import write_report

        with self.console.phase("report") as phase:
            page = write_report(self.run_dir)
            phase.finish(str(page))

    def _global_step(self) -> int:
        """GRPO steps done over all stages: the trackers' x axis (a step's metrics are logged at its count)."""
        return sum(s.steps for s in self.config.stages[: self.state.stage]) + self.state.step

    def _updater(self) -> Updater:
        if self.dist is not None and self.dist.enabled:
            from gymwire.trainer.update_group import ShardedUpdater

            return ShardedUpdater(self.state.rl_init_model, self.config.grpo, self.dist)
        from gymwire.trainer.grpo import GRPOUpdater

        return GRPOUpdater(self.state.rl_init_model, self.config.grpo)

    def _policy_class(self) -> type[Policy]:
        from gymwire.trainer.policy import policy_class

        return policy_class(self.config.model.backend)

    def _open_policy(self, model_dir: Path) -> Policy:
        """The configured backend over a model folder (for openai: the tokenizer's folder)."""
        from gymwire.trainer.policy import make_policy

        cfg = self.config
        if cfg.model.backend == "openai":
            return make_policy(
                "openai",
                cfg.vllm.server_url,
                tokenizer=str(model_dir),
                settings=cfg.vllm,
                nccl_address=cfg.vllm.nccl_address or None,
                nccl_port=cfg.vllm.nccl_port,
            )
        if cfg.model.backend == "vllm":
            return make_policy("vllm", model_dir, settings=cfg.vllm, seed=cfg.seed)
        return make_policy(cfg.model.backend, model_dir)

    def _training_policy(self, updater: Updater, current: Policy | None) -> Policy:
        """The policy that samples rollouts with the weights being trained.

        A backend that samples with the live training model (transformers) is built over it (nothing
        to sync); an engine is kept (it was started for the base evaluation) and given the current
        weights.
        """
        kind = self._policy_class()
        if kind.samples_live_model:
            if current is not None:
                current.close()
            # A step's episodes in one batch, up to 32 (a padded batch's KV cache grows with it).
            r = self.config.rollout
            return kind.for_live_model(
                updater.model, updater.tokenizer, max_batch=min(r.group_size * r.batch_tasks, 32)
            )
        policy = current or self._open_policy(Path(self.state.rl_init_model))
        policy.update_weights(updater.named_weights())
        return policy

    def _sync_weights(self, policy: Policy, updater: Updater, episodes: list[Trajectory]) -> dict[str, float]:
        """Stream the updated weights into the inference engine, then check that they arrived: the
        engine's log-probs of one of this step's episodes must match the trainer's."""
        from gymwire.trainer.weight_sync import check_sync

        started = time.perf_counter()
        policy.update_weights(updater.named_weights())
        synced = time.perf_counter() - started
        metrics = check_sync(policy, updater, episodes, tolerance=self.config.vllm.sync_check_tolerance)
        return {"sync_s": synced, **metrics}

    async def _train_stage(
        self, pool: EnvPool, stage: Stage, stream: TaskStream, updater: Updater, policy: Policy
    ) -> None:
        from gymwire.trainer.model import release_memory

        cfg = self.config
        engine = RolloutEngine(pool, policy, cfg.rollout, env_configs(stage.mix))
        while self.state.step < stage.steps:
            step = self.state.step
            phase = self.console.phase(f"GRPO {stage.name} {step + 1}/{stage.steps}")
            phase.update(f"rollouts: {cfg.rollout.batch_tasks} tasks x {cfg.rollout.group_size}", force=True)
            started = time.perf_counter()
            refs = await stream.draw(stage.name, step, stage.mix, cfg.rollout.batch_tasks)
            groups = await engine.groups(refs, cfg.rollout.group_size, base_seed=cfg.seed * 7919 + step * 100_003)
            rollout_s = time.perf_counter() - started
            episodes = [t for g in groups for t in g]
            if cfg.save_rollouts:
                self._save_rollouts(groups, step)
            phase.update(f"update on {len(episodes)} episodes (rollouts {duration(rollout_s)})", force=True)
            policy.sleep()  # with vLLM's sleep mode the engine frees the GPU for the update
            metrics = {f"grpo/{k}": v for k, v in (await asyncio.to_thread(updater.step, episodes)).items()}
            kill_point("update")
            release_memory()  # the step's activations, before the next rollouts allocate theirs
            if policy.needs_weight_sync:
                metrics.update({f"sync/{k}": v for k, v in self._sync_weights(policy, updater, episodes).items()})
            record = self._log_step(
                stage, step, episodes, metrics, rollout_s, time.perf_counter() - started - rollout_s, engine
            )
            phase.finish(step_summary(record))
            kill_point("metrics")
            self.state.step = step + 1
            every = cfg.checkpoint.every
            if (every and self.state.step % every == 0) or self.state.step == stage.steps:
                self._checkpoint(updater)
            if cfg.eval.every_steps and self.state.step % cfg.eval.every_steps == 0 and self.state.step < stage.steps:
                await self._evaluate(pool, policy, f"stage-{self.state.stage}-{stage.name}-step-{self.state.step}")

    def _checkpoint(self, updater: Updater) -> None:
        """A new resume point: written aside, renamed into place, recorded in state.json, and only
        then are checkpoints beyond the newest `keep_last` deleted, so a crash at any moment leaves
        state.json naming a complete checkpoint."""
        settings = self.config.checkpoint
        folder = self.run_dir / "checkpoints"
        name = f"step-{updater.global_step}"
        tmp = folder / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        updater.save(tmp, weights_only=settings.weights_only)
        kill_point("checkpoint")
        shutil.rmtree(folder / name, ignore_errors=True)  # a leftover of a crash before state.json moved
        os.replace(tmp, folder / name)
        kill_point("checkpoint-renamed")
        self.state.checkpoint = f"checkpoints/{name}"
        self.state.save(self.run_dir)
        self._held = (self.state.stage, self.state.step)
        done = sorted(
            (p for p in folder.glob("step-*") if p.name.split("-")[1].isdigit()),
            key=lambda p: int(p.name.split("-")[1]),
        )
        for old in done[: -settings.keep_last]:
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    def _save_rollouts(self, groups: list[list[Trajectory]], step: int) -> None:
        folder = self.run_dir / "rollouts"
        folder.mkdir(exist_ok=True)
        with (folder / f"stage-{self.state.stage}-step-{step}.jsonl").open("w") as sink:
            for group in groups:
                for sample, trajectory in enumerate(group):
                    write_trajectory(sink, trajectory, sample=sample)
                    kill_point("rollout")  # a rollout file cut short

    def _log_step(
        self,
        stage: Stage,
        step: int,
        episodes: list[Trajectory],
        metrics: dict[str, float],
        rollout_s: float,
        update_s: float,
        engine: RolloutEngine,
    ) -> dict[str, Any]:
        scored = [t for t in episodes if not t.aborted]
        record = {
            "stage": stage.name,
            "stage_index": self.state.stage,
            "step": step,
            "time": time.time(),
            "tasks": sorted({f"{t.env}/{t.task_id}" for t in episodes}),
            "episodes": len(scored),
            "aborted": len(episodes) - len(scored),
            "success": sum(t.success for t in scored) / max(len(scored), 1),
            "reward": sum(t.reward for t in scored) / max(len(scored), 1),
            "turns": sum(t.turns for t in scored) / max(len(scored), 1),
            "tokens": sum(t.generated_tokens for t in scored) / max(len(scored), 1),
            "rollout_s": rollout_s,
            "update_s": update_s,
            "aborted_retried": engine.stats.aborted_retried,
            "aborted_dropped": engine.stats.aborted_dropped,
            **metrics,
        }
        with (self.run_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.trackers:
            self.trackers.log_record(record, self._global_step() + 1)
        return record

    def run_sync(self) -> RunState:
        return asyncio.run(self.run())


def step_summary(record: dict[str, Any]) -> str:
    """A metrics.jsonl record as the console shows it: reward, success, the groups that trained, seconds."""
    groups = record.get("grpo/groups")
    trained = ""
    if groups is not None:
        skipped = record.get("grpo/skipped_groups", 0) + record.get("grpo/nonfinite_groups", 0)
        trained = f"  trained {int(groups - skipped)}/{int(groups)} groups"
    loss = f"  loss {record['grpo/loss']:.4f}" if "grpo/loss" in record else ""
    aborted = f"  aborted {record['aborted']}" if record.get("aborted") else ""
    return (
        f"reward {record['reward']:.3f}  success {record['success']:.1%}{trained}{loss}{aborted}"
        f"  rollout {duration(record['rollout_s'])}  update {duration(record['update_s'])}"
    )


def base_policy_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def train(config: RunConfig, progress: bool = True) -> RunState:
    """Run `config`. Under torchrun (WORLD_SIZE > 1) rank 0 runs it and the other ranks hold their
    FSDP2 shards of the update (trainer/update_group.py)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Trainer(config, progress).run_sync()
    from gymwire.trainer.config import ConfigError
    from gymwire.trainer.distributed import init_from_env
    from gymwire.trainer.policy import policy_class
    from gymwire.trainer.update_group import follow, stop_followers

    why = policy_class(config.model.backend).torchrun_conflict
    if why is not None:
        raise ConfigError(
            f"model.backend: {why}. Under torchrun rollouts come from a vLLM server on GPUs of its own: "
            "model.backend: openai, vllm.server_url: the server, vllm.weight_sync: nccl (README, Train on GPUs)"
        )
    if config.warm_start is not None:
        raise ConfigError(
            "warm_start: run the warm start in one process first and point model.name at its "
            "output; under torchrun only the GRPO update is sharded"
        )
    dist = init_from_env()
    try:
        if not dist.is_main:
            follow(dist)
            return RunState.load(Path(config.run_dir))
        try:
            return Trainer(config, progress, dist=dist).run_sync()
        finally:
            stop_followers(dist)
    finally:
        dist.close()

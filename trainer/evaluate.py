"""Evaluate a policy (a model, the expert, or random play) on any environments' tasks, k samples each.

Results: avg@k / pass@k tables per env, tier and category (JSON and Markdown) and every trajectory
as JSONL. An interrupted evaluation resumes: finished episodes are read back from the JSONL (a line
a kill cut short is dropped and played again). `run.json` names what the folder evaluates, so a second
evaluation of something else is refused instead of mixed into the same results.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from gymwire.client import EnvPool
from gymwire.trainer.agents import REFERENCE_AGENTS, play_reference
from gymwire.trainer.console import Console, resolve
from gymwire.trainer.faults import kill_point
from gymwire.trainer.metrics import EvalRow, markdown_table, summarize
from gymwire.trainer.model import release_memory
from gymwire.trainer.records import drop_cut_line, read_trajectories, write_trajectory
from gymwire.trainer.rollout import EnvConfig, RolloutEngine, TaskRef
from gymwire.trainer.settings import EvalSpec
from gymwire.trainer.types import Trajectory

__all__ = ["REFERENCE_AGENTS", "EvalResult", "EvalSpec", "evaluate", "select_tasks"]


@dataclass
class EvalResult:
    rows: list[EvalRow]  # per env x difficulty
    by_category: list[EvalRow]
    trajectories: list[Trajectory] = field(repr=False, default_factory=list)

    def markdown(self, title: str = "") -> str:
        return markdown_table(self.rows, title)


async def select_tasks(pool: EnvPool, spec: EvalSpec) -> list[TaskRef]:
    """A seeded sample of each env's listed tasks, per difficulty tier so every tier is covered."""
    refs: list[TaskRef] = []
    for env in spec.envs or pool.env_names:
        info = await pool.info(env)
        tiers = [spec.difficulty] if spec.difficulty else list(info.catalogue.difficulties)
        for tier in tiers:
            ids = []
            for category in spec.category.split(","):  # "a,b": the tasks of either category
                ids += [t.id for t in await pool.list_tasks(env, spec.split, tier, category.strip())]
            if spec.tasks_per_env and len(ids) > spec.tasks_per_env:
                ids = sorted(random.Random(f"{spec.seed}/{env}/{tier}").sample(ids, spec.tasks_per_env))
            refs.extend(TaskRef(env, i) for i in ids)
    return refs


def _read_done(path: Path) -> dict[tuple[str, str, int], Trajectory]:
    if not path.exists():
        return {}
    drop_cut_line(path)
    return {(t.env, t.task_id, sample): t for sample, t in read_trajectories(path)}


def _claim(out_dir: Path, identity: dict) -> None:
    """Record what `out_dir` evaluates, or refuse when it already holds another evaluation's episodes."""
    path = out_dir / "run.json"
    if path.exists():
        held = json.loads(path.read_text())
        if held != identity:
            diff = sorted(k for k in identity.keys() | held.keys() if identity.get(k) != held.get(k))
            raise ValueError(
                f"{out_dir} holds another evaluation (differs in {', '.join(diff)}): "
                "resuming would mix their episodes; use another --out folder"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(identity, indent=2, sort_keys=True))


async def evaluate(
    pool: EnvPool,
    agent: RolloutEngine | str,
    spec: EvalSpec,
    *,
    out_dir: Path | None = None,
    env_settings: dict[str, EnvConfig] | None = None,
    progress: bool | Console = True,
    desc: str = "eval",
    store_tokens: bool = False,
    agent_name: str = "",
) -> EvalResult:
    """Run k samples of every selected task (skipping those already in out_dir) and summarise.
    `agent_name` names the policy evaluated (e.g. the CLI's --policy), part of the folder's identity.
    `progress`: a console line named `desc` (episodes done, running success), then one summary line."""
    refs = await select_tasks(pool, spec)
    jobs = [(ref, i) for ref in refs for i in range(spec.k)]
    settings = env_settings or (agent.env_settings if isinstance(agent, RolloutEngine) else {})
    jsonl = out_dir / "trajectories.jsonl" if out_dir else None
    if out_dir:
        _claim(out_dir, _identity(agent, agent_name, spec, settings, pool.env_names))
    done = _read_done(jsonl) if jsonl else {}
    resumed = [done[key] for key in ((r.env, r.task_id, i) for r, i in jobs) if key in done]
    phase = resolve(progress).phase(desc, total=len(jobs))
    wins = sum(t.success for t in resumed if not t.aborted)
    phase.update(_running(wins, len(resumed)), done=len(resumed), force=True)
    lock = asyncio.Lock()
    sink = jsonl.open("a") if jsonl else None

    async def one(ref: TaskRef, sample: int) -> Trajectory:
        nonlocal wins
        key = (ref.env, ref.task_id, sample)
        if key in done:
            return done[key]
        seed = spec.seed * 1_000_003 + sample
        group = f"eval/{ref.env}/{ref.task_id}"
        if isinstance(agent, RolloutEngine):
            trajectory = await agent.episode(ref, group, seed=seed)
        else:
            trajectory = await play_reference(pool, ref, agent, settings.get(ref.env, EnvConfig()), seed, group)
        async with lock:
            if sink is not None:
                write_trajectory(sink, trajectory, sample=sample, tokens=store_tokens)
                sink.flush()
                kill_point("eval")
            wins += trajectory.success and not trajectory.aborted
            phase.update(_running(wins, phase.done + 1), advance=1)
        return trajectory

    try:
        trajectories = list(await asyncio.gather(*(one(ref, i) for ref, i in jobs)))
    except BaseException:
        phase.abandon()
        raise
    finally:
        if sink is not None:
            sink.close()
        # Generation's KV caches sit freed in the generate thread's malloc arena; the next phase
        # (training, in other threads) cannot reuse them there, so they go back to the OS.
        release_memory()
    result = EvalResult(
        summarize(trajectories, spec.k, ("env", "split", "difficulty")),
        summarize(trajectories, spec.k, ("env", "split", "difficulty", "category")),
        trajectories,
    )
    phase.finish(f"{len(trajectories)} episodes  {summary_line(result.rows)}")
    if out_dir:
        (out_dir / "results.json").write_text(
            json.dumps(
                {
                    "spec": _own_fields(spec, EvalSpec),
                    "rows": [r.as_dict() for r in result.rows],
                    "by_category": [r.as_dict() for r in result.by_category],
                },
                indent=2,
            )
        )
        (out_dir / "results.md").write_text(result.markdown(desc))
    return result


def _running(wins: int, episodes: int) -> str:
    return f"episodes  success {wins / episodes:.1%}" if episodes else "episodes"


def summary_line(rows: Sequence[EvalRow]) -> str:
    """Each env and tier's avg@k and pass@k on one line, e.g. `textcraft/easy avg@2 25.0% pass@2 50.0%`."""
    parts = []
    for row in rows:
        where = "/".join(p for p in (row.env, row.difficulty) if p)
        parts.append(f"{where} avg@{row.k} {row.avg_at_k:.1%} pass@{row.k} {row.pass_at_k:.1%}")
    return " · ".join(parts)


def _identity(
    agent: RolloutEngine | str, name: str, spec: EvalSpec, settings: dict[str, EnvConfig], envs: Sequence[str]
) -> dict:
    sampling = asdict(agent.config.sampling) if isinstance(agent, RolloutEngine) else None
    return json.loads(
        json.dumps(
            {
                "agent": name or (agent if isinstance(agent, str) else type(agent.policy).__name__),
                "sampling": sampling,
                "spec": _own_fields(spec, EvalSpec),
                "env_settings": {env: _own_fields(s, EnvConfig) for env, s in sorted(settings.items())},
                "envs": sorted(envs),
            }
        )
    )


def _own_fields(config: object, cls: type) -> dict:
    """`cls`'s own fields of `config`, also of a subclass: a run's env configs are its mix entries, whose
    task selection and weight are not the evaluation's, and its spec is its `eval:` section, whose
    schedule is not either (its sampling and turn cap stand in `sampling` and `env_settings`)."""
    return {f.name: getattr(config, f.name) for f in fields(cls)}

"""Every experiment of configs/paper/ at CPU scale: one runs end to end, every one is checked short of it.

The CPU variant keeps each config's environments, stages, mixes and switches and shrinks the
numbers (scale_for_cpu); the servers are real processes, the model is the real default model.

What a config decides (its environments, stages, mixes, tiers and action-list switches) is checked
for every config against the real servers: the CPU variant keeps it, every stage draws its tasks
from its mix (every environment of a mixture, every tier it names), every mix entry's settings
play an episode, the evaluation covers every environment and tier with the settings the trainer
evaluates with, and the model being trained plays a GRPO group of the first stage that the
updater takes a step on. What the trainer does with any config (stages in sequence, an
evaluation by the model after each, checkpoints, the report with its forgetting section) runs
end to end for END_TO_END, as a user runs it (`gymwire train --cpu-scale`): more than one stage,
difficulty tiers and action lists, so it walks every path the other configs take (test_train.py and
test_resume.py run the same trainer on more steps).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from gymwire.env_servers.local import LocalServer
from gymwire.env_servers.registry import available
from gymwire.trainer.agents import play_reference
from gymwire.trainer.config import RunConfig, env_configs, load_config, scale_for_cpu
from gymwire.trainer.evaluate import evaluate
from gymwire.trainer.rollout import RolloutEngine, TaskRef
from gymwire.trainer.train import TaskStream, Trainer

pytestmark = pytest.mark.slow
CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs" / "paper").glob("*.yaml"))
ENVS = ("babyai", "textcraft", "webshop", "searchqa", "alfworld")
END_TO_END = "curriculum-babyai"  # two stages (forgetting), difficulty tiers, action lists on
SWITCHES = ("env", "split", "difficulty", "category", "weight", "show_valid_actions", "history_turns")


def switches(entry) -> list:
    return [getattr(entry, k) for k in SWITCHES]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    logs = tmp_path_factory.mktemp("servers")
    started = {env: LocalServer(env, log_path=logs / f"{env}.log") for env in ENVS if env in available()}
    try:
        for server in started.values():
            server.wait(timeout=300)
        yield {env: s.address for env, s in started.items()}
    finally:
        for server in started.values():
            server.stop()


def cpu_variant(path: Path, servers: dict[str, str], run_dir: Path) -> RunConfig:
    config = scale_for_cpu(load_config(path))
    missing = sorted(set(config.envs) - set(servers))
    if missing:
        pytest.skip(f"environments not installed here: {missing}")
    config.envs = {env: [servers[env]] for env in config.envs}
    config.run_dir = str(run_dir)
    config.model.threads = 1
    return config


@pytest.fixture(scope="module")
def updater():
    """One GRPO updater of the default model with the paper configs' CPU settings (the same for every
    config: checked here), and the policy sampling with its live weights, as the trainer builds them."""
    from gymwire.trainer.grpo import GRPOUpdater
    from gymwire.trainer.model import resolve_model, set_threads
    from gymwire.trainer.policy.hf import HFPolicy

    settings = {repr(scale_for_cpu(load_config(path)).grpo) for path in CONFIGS}
    assert len(settings) == 1, settings
    previous = set_threads(1)
    cpu = scale_for_cpu(load_config(CONFIGS[0]))
    updater = GRPOUpdater(resolve_model(cpu.model.name), cpu.grpo)
    policy = HFPolicy(updater.model, updater.tokenizer)
    try:
        yield updater, policy
    finally:
        policy.close()
        set_threads(previous)


def test_every_paper_row_has_a_config():
    names = {c.stem for c in CONFIGS}
    assert {
        "within-env-difficulty",
        "curriculum-babyai",
        "transfer-alfworld",
        "action-list-on",
        "action-list-off",
        "sequential-webshop-textcraft",
        "five-env-sequential",
        "five-env-mixture",
    } <= names
    for path in CONFIGS:
        config = load_config(path)
        assert config.rollout.group_size == 8 and config.eval.k == 8  # the paper's settings


@pytest.mark.parametrize("path", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_cpu_variant_keeps_the_experiment(path):
    paper = load_config(path)
    cpu = scale_for_cpu(paper)
    assert cpu.envs == paper.envs and cpu.seed == paper.seed
    assert [s.name for s in cpu.stages] == [s.name for s in paper.stages]
    for ours, theirs in zip(cpu.stages, paper.stages, strict=True):
        assert ours.steps == 1 <= theirs.steps
        assert [switches(m) for m in ours.mix] == [switches(m) for m in theirs.mix]
    e, p = cpu.eval, paper.eval
    assert (e.envs, e.split, e.difficulty, e.category) == (p.envs, p.split, p.difficulty, p.category)
    assert e.base and e.tasks_per_env >= 1 and e.k >= 2  # pass@k needs two samples
    assert cpu.rollout.group_size >= 2 and cpu.model.backend == "hf"


async def _check_against_servers(config: RunConfig, policy) -> list:
    """Everything of a run short of training, against the servers; returns the first stage's groups."""
    trainer = Trainer(config, progress=False)
    pool = await trainer._connect()
    try:
        # The evaluation after every stage: each environment and each tier its server lists, played
        # model-free with the settings the trainer evaluates with.
        e = config.eval
        result = await evaluate(pool, "random", e, env_settings=config.eval_env_configs(), progress=False)
        expected = set()
        for env in e.envs or config.envs:
            tiers = (await pool.info(env)).catalogue.difficulties
            expected |= {(env, tier) for tier in ([e.difficulty] if e.difficulty else tiers)}
        assert {(r.env, r.difficulty) for r in result.rows} == expected
        assert all(r.episodes == e.tasks_per_env * e.k and r.aborted == 0 for r in result.rows)

        stream = TaskStream(pool, config.seed)
        for stage in config.stages:
            # Every environment of the mix is drawn, and only tasks its entries list (tier, split, category).
            drawn = await stream.draw(stage.name, 0, stage.mix, 20 * len(stage.mix))
            assert {r.env for r in drawn} == {m.env for m in stage.mix}, stage.name
            listed = {TaskRef(m.env, t) for m in stage.mix for t in await stream.tasks(m)}
            assert set(drawn) <= listed, stage.name
            settings = env_configs(stage.mix)
            for entry in stage.mix:
                ref = TaskRef(entry.env, (await stream.tasks(entry))[0])
                played = await play_reference(pool, ref, "random", settings[entry.env], seed=config.seed)
                assert not played.aborted and 1 <= played.turns <= entry.max_turns, (stage.name, entry.env)
                assert played.info["difficulty"] == (entry.difficulty or played.info["difficulty"])
                opening = next(m["content"] for m in played.messages if m["role"] == "user")
                assert ("Available actions:" in opening) == entry.show_valid_actions, (stage.name, entry.env)

        # The first stage's rollouts as the trainer makes them, by the model being trained.
        first = config.stages[0]
        engine = RolloutEngine(pool, policy, config.rollout, env_configs(first.mix))
        refs = await TaskStream(pool, config.seed).draw(first.name, 0, first.mix, config.rollout.batch_tasks)
        return await engine.groups(refs, config.rollout.group_size, base_seed=config.seed * 7919)
    finally:
        await pool.close()


@pytest.mark.parametrize("path", [c for c in CONFIGS if c.stem != END_TO_END], ids=lambda p: p.stem)
def test_cpu_variant_short_of_training(path, servers, updater, tmp_path):
    config = cpu_variant(path, servers, tmp_path / path.stem)
    grpo, policy = updater
    groups = asyncio.run(_check_against_servers(config, policy))
    episodes = [t for g in groups for t in g]
    assert len(episodes) == config.rollout.batch_tasks * config.rollout.group_size
    assert not any(t.aborted for t in episodes)
    assert {t.env for t in episodes} <= {m.env for m in config.stages[0].mix}
    assert all(t.generated_tokens > 0 for t in episodes)
    step = grpo.global_step
    metrics = grpo.step(episodes)
    assert grpo.global_step == step + 1 and metrics["groups"] == len(groups) and metrics["aborted"] == 0


@pytest.fixture(scope="module", autouse=True)
def end_to_end(background, servers, tmp_path_factory):
    """END_TO_END trained as a user trains it (`gymwire train --config ... --cpu-scale`) on the servers
    above: started with the module, it runs in its own process while the checks above take the other
    core; its test comes last and reads what it wrote."""
    test = "test_cpu_variant_runs_end_to_end"
    if test not in background.selected:
        yield None
        return
    path = next(c for c in CONFIGS if c.stem == END_TO_END)
    raw = yaml.safe_load(path.read_text())
    missing = sorted(set(raw["envs"]) - set(servers))
    if missing:
        yield missing
        return
    raw["envs"] = {env: servers[env] for env in raw["envs"]}
    raw["model"]["threads"] = 1
    folder = tmp_path_factory.mktemp("end-to-end")
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))
    run_dir = folder / path.stem
    command = ["train", "--config", str(folder / "config.yaml"), "--cpu-scale", "--run-dir", str(run_dir)]
    background.start(
        test,
        [sys.executable, "-m", "gymwire.cli.main", *command, "--no-progress"],
        timeout=1700,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    yield run_dir
    background.wait(test)  # the servers stay up until the run is over


@pytest.mark.timeout(1800)
def test_cpu_variant_runs_end_to_end(end_to_end, background):
    if isinstance(end_to_end, list):
        pytest.skip(f"environments not installed here: {end_to_end}")
    done = background.result("test_cpu_variant_runs_end_to_end")
    assert done.returncode == 0, done.stderr[-3000:]
    path = next(c for c in CONFIGS if c.stem == END_TO_END)
    config = scale_for_cpu(load_config(path))
    assert len(config.stages) > 1 and any(m.difficulty for s in config.stages for m in s.mix)
    assert any(m.show_valid_actions for s in config.stages for m in s.mix)
    run = Path(end_to_end)
    state = json.loads((run / "state.json").read_text())
    assert state["phase"] == "done" and state["stage"] == len(config.stages)
    assert json.loads((run / "config.json").read_text())["eval"]["k"] == config.eval.k  # the CPU variant ran
    report = (run / "report" / "report.md").read_text()
    assert "## Held-in vs held-out" in report and "## Transfer matrix" in report and "## Forgetting" in report
    for env in config.envs:
        assert f"| {env} |" in report  # every environment is evaluated after every stage
    for image in ("evaluations.png", "learning_curve.png", "efficiency.png"):
        assert (run / "report" / image).stat().st_size > 1000
    assert len([p for p in (run / "eval").iterdir()]) == 1 + len(config.stages)

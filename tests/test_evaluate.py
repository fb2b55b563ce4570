"""Evaluation and reports through real servers, with the reference agents (no model needed)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict

import pytest

from gymwire.client import EnvPool
from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.textcraft import TextCraftEnvironment
from gymwire.trainer.config import parse_config
from gymwire.trainer.evaluate import EvalSpec, evaluate
from gymwire.trainer.metrics import mean_ci, summarize
from gymwire.trainer.records import read_trajectories
from gymwire.trainer.report import write_report
from gymwire.trainer.rollout import EnvConfig


@pytest.fixture(scope="module")
def servers():
    with BackgroundServer(TextCraftEnvironment) as textcraft, BackgroundServer(GuessEnvironment) as guess:
        yield {"textcraft": textcraft.address, "guess": guess.address}


def run_eval(addresses, agent, spec, out_dir=None):
    async def main():
        async with EnvPool(addresses) as pool:
            return await evaluate(pool, agent, spec, out_dir=out_dir, progress=False)

    return asyncio.run(main())


def test_oracle_rows_are_full_success(servers):
    spec = EvalSpec(split="test", tasks_per_env=4, k=2)
    result = run_eval(list(servers.values()), "oracle", spec)
    assert {(r.env, r.difficulty) for r in result.rows} == {(e, d) for e in servers for d in ("easy", "hard")}
    for row in result.rows:
        assert row.avg_at_k == 1.0 and row.pass_at_k == 1.0 and row.tasks == 4 and row.episodes == 8
        assert row.invalid_rate == 0.0 and row.aborted == 0
    assert result.by_category  # per category rows too


def test_eval_resumes_from_its_folder(servers, tmp_path):
    spec = EvalSpec(envs=["guess"], split="test", tasks_per_env=3, k=2, seed=5)
    first = run_eval([servers["guess"]], "random", spec, tmp_path)
    lines = (tmp_path / "trajectories.jsonl").read_text().splitlines()
    assert len(lines) == 12
    # Drop the last 5 episodes as if the run had been killed mid-write (the 8th line cut in half); the
    # rerun plays only those.
    (tmp_path / "trajectories.jsonl").write_text("\n".join(lines[:7]) + "\n" + lines[7][:40])
    second = run_eval([servers["guess"]], "random", spec, tmp_path)
    resumed = (tmp_path / "trajectories.jsonl").read_text().splitlines()
    assert len(resumed) == 12 and resumed[:7] == lines[:7]
    keys = sorted((t.task_id, sample) for sample, t in read_trajectories(tmp_path / "trajectories.jsonl"))
    assert len(set(keys)) == 12  # every (task, sample) once
    assert [r.tasks for r in second.rows] == [r.tasks for r in first.rows]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["spec"]["k"] == 2 and len(saved["rows"]) == 2
    assert "| guess | test | easy |" in (tmp_path / "results.md").read_text()


def test_a_run_configs_eval_section_is_its_spec(servers, tmp_path):
    """The trainer evaluates with its config's eval section as it is; the folder records the spec's
    own fields, so it is the same evaluation as the plain EvalSpec (and a resume of an older run's)."""
    spec = EvalSpec(envs=["guess"], split="test", tasks_per_env=3, k=2, seed=5)
    run_eval([servers["guess"]], "random", spec, tmp_path)
    config = parse_config(
        {
            "envs": {"guess": servers["guess"]},
            "stages": [{"name": "g", "steps": 1, "mix": [{"env": "guess"}]}],
            "eval": {"envs": ["guess"], "tasks_per_env": 3, "k": 2, "every_steps": 4, "max_turns": 2},
            "seed": 5,
        }
    )
    lines = (tmp_path / "trajectories.jsonl").read_text()
    run_eval([servers["guess"]], "random", config.eval, tmp_path)  # resumes: nothing left to play
    assert (tmp_path / "trajectories.jsonl").read_text() == lines
    assert json.loads((tmp_path / "results.json").read_text())["spec"] == json.loads(json.dumps(asdict(spec)))


@pytest.mark.parametrize(
    ("agent", "spec", "differs"),
    [
        ("oracle", EvalSpec(envs=["guess"], split="test", tasks_per_env=3, k=2, seed=5), "agent"),
        ("random", EvalSpec(envs=["guess"], split="test", tasks_per_env=3, k=4, seed=5), "spec"),
    ],
)
def test_an_eval_folder_refuses_another_evaluation(servers, tmp_path, agent, spec, differs):
    run_eval(
        [servers["guess"]], "random", EvalSpec(envs=["guess"], split="test", tasks_per_env=3, k=2, seed=5), tmp_path
    )
    before = (tmp_path / "trajectories.jsonl").read_text()
    with pytest.raises(ValueError, match=f"holds another evaluation \\(differs in {differs}\\)"):
        run_eval([servers["guess"]], agent, spec, tmp_path)
    assert (tmp_path / "trajectories.jsonl").read_text() == before  # nothing lost, nothing mixed in


def test_report_has_held_in_out_transfer_and_forgetting(servers, tmp_path):
    """A run folder written by real evaluations: random play as the 'base', the expert after stages."""
    config = parse_config(
        {
            "envs": servers,
            "run_dir": str(tmp_path),
            "stages": [
                {"name": "tc", "steps": 1, "mix": [{"env": "textcraft"}]},
                {"name": "guess", "steps": 1, "mix": [{"env": "guess"}]},
            ],
        }
    )
    (tmp_path / "config.json").write_text(json.dumps(asdict(config)))
    spec = EvalSpec(split="test", tasks_per_env=2, k=2)
    run_eval(list(servers.values()), "random", spec, tmp_path / "eval" / "base")
    run_eval(list(servers.values()), "oracle", spec, tmp_path / "eval" / "stage-0-tc")
    run_eval(list(servers.values()), "oracle", spec, tmp_path / "eval" / "stage-1-guess")
    with (tmp_path / "metrics.jsonl").open("w") as f:
        for step, stage in enumerate(["tc", "tc", "guess"]):
            f.write(
                json.dumps(
                    {
                        "stage": stage,
                        "step": step,
                        "success": 0.1 * step,
                        "reward": 0.1 * step,
                        "turns": 3 - step,
                        "tokens": 100 - step,
                        "grpo/groups": 2,
                        "grpo/skipped_groups": 2 if step == 1 else 0,  # step 1 trained nothing
                    }
                )
                + "\n"
            )
    page = write_report(tmp_path)
    text = page.read_text()
    assert "## Held-in vs held-out" in text and "| textcraft | in |" in text
    top = text.splitlines()[2]  # the result first: the final evaluation against the base, paired by task
    assert top.startswith("**GRPO: +") and "over the base model, 95% CI [" in top and "tasks x 2" in top
    assert "groups with equal rewards (nothing to learn): 2 of 6 (33%); steps that trained nothing: 1 (tc/1)" in text
    assert "## Transfer matrix" in text and "## Forgetting" in text
    assert "Failure tags" in text  # random play on TextCraft fails, and is tagged
    for image in ("evaluations.png", "learning_curve.png", "efficiency.png"):
        assert (page.parent / image).stat().st_size > 1000


def test_trajectories_keep_a_record_per_turn(servers, tmp_path):
    """Every answered turn is stored with what the server parsed; old files without records still load."""
    spec = EvalSpec(split="test", tasks_per_env=2, k=1)
    run_eval(list(servers.values()), "oracle", spec, tmp_path / "oracle")
    run_eval([servers["textcraft"]], "random", spec, tmp_path / "random")  # no valid actions: invalid turns
    lines = [
        json.loads(line)
        for folder in ("oracle", "random")
        for line in (tmp_path / folder / "trajectories.jsonl").read_text().splitlines()
    ]
    episodes = [t for _, t in read_trajectories(tmp_path / "oracle" / "trajectories.jsonl")]
    episodes += [t for _, t in read_trajectories(tmp_path / "random" / "trajectories.jsonl")]
    assert len(episodes) == len(lines) == 12  # 2 tasks x 2 tiers: 2 envs oracle, 1 random
    assert any(t.invalid_actions for t in episodes) and any(t.success for t in episodes)
    for line, t in zip(lines, episodes, strict=True):
        assert len(t.steps) == t.turns == len(line["trajectory"]["steps"]) > 0
        assert [s.turn for s in t.steps] == list(range(t.turns))
        assert t.invalid_actions == sum(not s.action_valid for s in t.steps)
        assert t.reward == pytest.approx(sum(s.reward for s in t.steps))
        assert all(s.step_s > 0 and s.generate_s >= 0 and s.generated_tokens == 0 for s in t.steps)
        assert all(isinstance(s.info, dict) for s in t.steps)
        last = t.steps[-1]
        assert (last.terminated, last.truncated) == (t.terminated, t.truncated)
        assert not any(s.terminated or s.truncated for s in t.steps[:-1])
        if t.success:  # the expert's actions are parsed and valid
            assert all(s.action_valid and s.parsed_action for s in t.steps)
    # A record written before per-turn records existed loads with none.
    old = dict(lines[0], trajectory={k: v for k, v in lines[0]["trajectory"].items() if k != "steps"})
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n")
    [(_, loaded)] = list(read_trajectories(tmp_path / "old.jsonl"))
    assert loaded.steps == [] and loaded.turns == episodes[0].turns


def test_report_plots_intervals_over_tasks(servers, tmp_path):
    """The evaluations plot and its table carry the Student's t interval of each env's avg@k, tasks as the unit."""
    spec = EvalSpec(envs=["guess"], split="test", tasks_per_env=3, k=4, seed=1)

    async def main():
        async with EnvPool([servers["guess"]]) as pool:  # four guesses: some episodes win, some do not
            return await evaluate(
                pool,
                "random",
                spec,
                out_dir=tmp_path / "eval" / "base",
                progress=False,
                env_settings={"guess": EnvConfig(max_turns=4)},
            )

    result = asyncio.run(main())
    [row] = summarize(result.trajectories, k=4)
    assert row.tasks == 6 and 0 < row.avg_at_k < 1 and row.avg_ci > 0
    per_task: dict[str, list[bool]] = {}
    for t in result.trajectories:
        per_task.setdefault(t.task_id, []).append(t.success)
    assert row.avg_ci == pytest.approx(mean_ci([sum(v) / len(v) for v in per_task.values()])[1])
    text = write_report(tmp_path).read_text()
    assert "## Success per evaluation" in text
    assert f"| base | {100 * row.avg_at_k:.1f} ± {100 * row.avg_ci:.1f} |" in text
    assert (tmp_path / "report" / "evaluations.png").stat().st_size > 1000


def test_an_evaluation_can_draw_from_several_categories(servers):
    from gymwire.trainer.evaluate import select_tasks

    async def draw(category: str, tasks: int) -> list[str]:
        async with EnvPool([servers["textcraft"]]) as pool:
            spec = EvalSpec(split="test", difficulty="easy", category=category, tasks_per_env=tasks)
            return [ref.task_id for ref in await select_tasks(pool, spec)]

    async def listed(category: str) -> set[str]:
        async with EnvPool([servers["textcraft"]]) as pool:
            return {t.id for t in await pool.list_tasks("textcraft", "test", "easy", category)}

    one, other = asyncio.run(listed("depth-1")), asyncio.run(listed("gen-depth-1"))
    assert one and other and not one & other
    assert set(asyncio.run(draw("depth-1, gen-depth-1", 0))) == one | other
    drawn = asyncio.run(draw("depth-1,gen-depth-1", 32))
    assert len(drawn) == 32 and set(drawn) <= one | other and set(drawn) & one and set(drawn) & other

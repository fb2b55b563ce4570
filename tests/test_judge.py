"""The LLM judge: strict parsing, and the whole path through `gymwire report --judge` against vLLM's OpenAI server."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from gymwire.client import EnvPool
from gymwire.trainer.evaluate import EvalSpec, evaluate
from gymwire.trainer.judge import CATEGORIES, NO_ANSWER, UNPARSEABLE, Judge, parse_category
from gymwire.trainer.model import default_model_dir
from gymwire.trainer.rollout import EnvConfig
from tests.conftest import gymwire_cli
from tests.test_policy import needs_vllm


@pytest.mark.parametrize(
    ("answer", "category"),
    [
        ("confirmation_bias", "confirmation_bias"),
        ("  `invalid_action`.\n", "invalid_action"),
        ('"Other"', "other"),
        ("confirmation bias", UNPARSEABLE),
        ("The answer is misread_task", UNPARSEABLE),
        ("misread_task, wrong_reasoning", UNPARSEABLE),
        ("", UNPARSEABLE),
    ],
)
def test_reply_is_parsed_strictly(answer: str, category: str) -> None:
    assert parse_category(answer) == category


def failing_run(address: str, run_dir: Path) -> list[dict]:
    """A run folder whose evaluation failed: random guesses with one turn each."""

    async def main() -> None:
        async with EnvPool([address]) as pool:
            await evaluate(
                pool,
                "random",
                EvalSpec(split="test", tasks_per_env=2, k=1),
                progress=False,
                out_dir=run_dir / "eval" / "base",
                env_settings={"guess": EnvConfig(max_turns=1)},
            )

    asyncio.run(main())
    lines = (run_dir / "eval" / "base" / "trajectories.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_unreachable_judge_is_no_answer(guess_server, tmp_path: Path) -> None:
    from gymwire.trainer.records import read_trajectories

    failing_run(guess_server.address, tmp_path)
    episodes = [t for _, t in read_trajectories(tmp_path / "eval" / "base" / "trajectories.jsonl")]
    judged = Judge("http://127.0.0.1:9/v1", "any", timeout_s=5).judge_all(episodes)
    assert len(judged) == len(episodes) and {j.category for j in judged} == {NO_ANSWER}
    assert all(j.answer for j in judged)  # the error, kept


def _served_requests(url: str) -> float:
    """vLLM's count of finished requests, from its Prometheus endpoint."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vllm:request_success_total")
    )


@pytest.mark.slow
@needs_vllm
def test_report_asks_the_judge_per_failed_episode(vllm_server, guess_server, tmp_path: Path) -> None:
    """One request per failed episode; each reply parsed or marked unparseable, stored beside the rule tags."""
    records = failing_run(guess_server.address, tmp_path)
    failed = [r for r in records if not r["trajectory"]["success"]]
    assert failed
    before = _served_requests(vllm_server)
    result = gymwire_cli("report", str(tmp_path), "--judge", f"{vllm_server}/v1", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _served_requests(vllm_server) - before == len(failed)
    stored = [json.loads(line) for line in (tmp_path / "report" / "failures" / "base.jsonl").read_text().splitlines()]
    assert [(s["sample"], s["task_id"]) for s in stored] == [(r["sample"], r["trajectory"]["task_id"]) for r in failed]
    for entry in stored:
        assert entry["tags"] == ["turn_limit"]
        judge = entry["judge"]
        assert judge["model"] == str(default_model_dir())
        assert judge["category"] in {*CATEGORIES, UNPARSEABLE} and isinstance(judge["answer"], str)
        assert (judge["category"] == UNPARSEABLE) == (parse_category(judge["answer"]) == UNPARSEABLE)
    page = (tmp_path / "report" / "report.md").read_text()
    assert f"Judge ({default_model_dir()})" in page
    # Without a judge the rule tags are still stored, and no request is made.
    served = _served_requests(vllm_server)
    assert gymwire_cli("report", str(tmp_path)).returncode == 0
    plain = [json.loads(line) for line in (tmp_path / "report" / "failures" / "base.jsonl").read_text().splitlines()]
    assert [e["tags"] for e in plain] == [["turn_limit"]] * len(failed) and not any("judge" in e for e in plain)
    assert _served_requests(vllm_server) == served

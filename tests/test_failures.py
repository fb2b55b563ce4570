"""Failure tags from per-turn records and the signals environments declare, through real servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from gymwire.client import EnvPool
from gymwire.client.aio import AsyncEpisode
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.searchqa import SearchQAEnvironment
from gymwire.env_servers.webshop import WebShopEnvironment
from gymwire.trainer.evaluate import EvalSpec, evaluate
from gymwire.trainer.failures import NO_RECORDS, commits, tags
from gymwire.trainer.report import write_report
from gymwire.trainer.rollout import Conversation, EnvConfig, NoTurn, TaskRef, TurnSource, play_episode, text_turn
from gymwire.trainer.types import Generation, StepRecord, Trajectory

EXPERT = None  # in a script: ask the server's expert for this turn


class ScriptedTurns(TurnSource):
    """An agent that writes the given turns in order (EXPERT: the server's expert move), then stops."""

    def __init__(self, turns: Sequence[str | None]) -> None:
        self.turns = list(turns)

    async def next_turn(self, episode: AsyncEpisode, conversation: Conversation) -> Generation | NoTurn:
        if not self.turns:
            return NoTurn("script done", truncated=False)
        turn = self.turns.pop(0)
        if turn is EXPERT:
            turn = await episode.expert_action() or ""
        return text_turn(conversation, turn)


def play(address: str, env: str, task_id: str, turns: Sequence[str | None], max_turns: int = 0) -> Trajectory:
    async def main() -> Trajectory:
        async with EnvPool([address]) as pool:
            return await play_episode(
                pool, TaskRef(env, task_id), ScriptedTurns(turns), EnvConfig(max_turns=max_turns), group_id="g"
            )

    return asyncio.run(main())


@pytest.fixture(scope="module")
def searchqa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cache = tmp_path_factory.mktemp("searchqa-cache")
    with BackgroundServer(lambda: SearchQAEnvironment(cache_dir=cache)) as server:
        yield server.address


def test_answer_without_search_is_an_unverified_commit(searchqa):
    t = play(searchqa, "searchqa", "gen:single:1", ["Thought: I know it.\n<answer>nobody</answer>"])
    assert t.terminated and not t.success
    assert t.steps[0].info["committed"] is True and t.steps[0].info["verified"] is False
    assert tags(t) == ["unverified_commit"]


def test_a_search_that_misses_the_needed_passage_does_not_verify(searchqa):
    """A search happened, but not one that found what the question needs: still unchecked."""
    t = play(searchqa, "searchqa", "gen:bridge:2", [EXPERT, "<answer>nobody</answer>"])
    assert t.steps[0].info.get("verified") is True  # the first hop's passage
    assert t.steps[1].info["verified"] is False  # the second hop was never looked up
    assert tags(t) == ["unverified_commit"]


def test_checked_and_still_wrong(searchqa):
    t = play(searchqa, "searchqa", "gen:single:1", [EXPERT, "<answer>nobody</answer>"])
    assert tags(t) == ["wrong_commit"]
    solved = play(searchqa, "searchqa", "gen:single:1", [EXPERT, EXPERT])
    assert solved.success and tags(solved) == [] and commits(solved.steps) == [True]


@pytest.fixture(scope="module")
def webshop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cache = tmp_path_factory.mktemp("webshop-cache")
    with BackgroundServer(lambda: WebShopEnvironment(500, cache_dir=cache, tasks_per_tier=2)) as server:
        yield server.address


SHOP_TASK = "gen:B03R7VMK3Z:0"  # search, open the product, choose its colour, buy


def test_buying_without_opening_the_details(webshop):
    t = play(webshop, "webshop", SHOP_TASK, [EXPERT, EXPERT, "Action: click[buy now]"])  # colour not chosen
    assert t.terminated and not t.success and t.steps[-1].info["committed"] is True
    assert tags(t) == ["unverified_commit"]


def test_buying_after_reading_the_description(webshop):
    t = play(
        webshop,
        "webshop",
        SHOP_TASK,
        [EXPERT, EXPERT, "Action: click[description]", "Action: click[< prev]", "Action: click[buy now]"],
    )
    assert t.steps[2].info["verified"] is True and t.steps[-1].info["verified"] is True
    assert not t.success and tags(t) == ["wrong_commit"]
    expert = play(webshop, "webshop", SHOP_TASK, [EXPERT] * 4)
    assert expert.success and commits(expert.steps) == [False]  # the expert buys without reading: not a failure


def test_loop_invalid_turn_limit_without_commit_signals(guess_server):
    """The reference env declares no commit: only the generic tags apply."""
    t = play(guess_server.address, "guess", "test-easy-0", ["Action: guess 0"] * 4, max_turns=4)
    assert t.truncated and all(s.parsed_action == "guess 0" and not s.action_valid for s in t.steps)
    assert tags(t) == ["turn_limit", "invalid_action", "repeated_action_loop"]
    wandering = play(guess_server.address, "guess", "test-easy-0", ["guess 0", "guess 0", "guess 11"], max_turns=3)
    assert tags(wandering) == ["turn_limit", "invalid_action"]  # two repeats are not a loop


def test_commit_checked_by_an_earlier_step():
    """Where a committing step carries no judgement of its own, an earlier check counts."""

    def step(turn: int, **info) -> StepRecord:
        return StepRecord(turn, f"a{turn}", True, 0.0, False, False, info)

    assert commits([step(0), step(1, committed=True)]) == [False]
    assert commits([step(0, verified=True), step(1, committed=True)]) == [True]
    assert commits([step(0, verified=True), step(1, committed=True, verified=False)]) == [False]
    assert commits([step(0, committed=True, verified=True)]) == [True]


def test_report_does_not_guess_without_records(guess_server, tmp_path: Path):
    """A run stored before per-turn records existed: the report says so instead of tagging."""

    async def main() -> None:
        async with EnvPool([guess_server.address]) as pool:
            await evaluate(
                pool,
                "random",
                EvalSpec(split="test", tasks_per_env=2, k=1),
                out_dir=tmp_path / "eval" / "base",
                env_settings={"guess": EnvConfig(max_turns=1)},
                progress=False,
            )

    asyncio.run(main())
    jsonl = tmp_path / "eval" / "base" / "trajectories.jsonl"
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    failed = sum(not line["trajectory"]["success"] for line in lines)
    assert failed and all(line["trajectory"]["steps"] for line in lines)
    text = write_report(tmp_path).read_text()
    assert "turn_limit" in text and NO_RECORDS not in text
    for line in lines:
        del line["trajectory"]["steps"]
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines))
    text = write_report(tmp_path).read_text()
    assert f"| {NO_RECORDS} |" in text and f"{failed} failed episodes were stored without per-turn records" in text
    assert "turn_limit" not in text


def test_analysis_knows_no_environment():
    """Tags come from the protocol's records: no environment names or action syntax in the analysis code."""
    root = Path(__file__).resolve().parents[1] / "trainer"
    words = ("webshop", "searchqa", "alfworld", "babyai", "textcraft", "click[", "<search>", "buy now", "action:")
    for name in ("failures.py", "report.py", "metrics.py", "judge.py"):
        path = root / name
        if path.exists():
            text = path.read_text().lower()
            assert not [w for w in words if w in text], name

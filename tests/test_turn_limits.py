"""Every test task of every bundled environment is solved by its expert within the turn limit the
environment reports for it: `max_turns` in the task's metadata where the environment states one, else
its default (GetInfo); a Reset without max_turns gets exactly that limit.

The bulk runs in-process (`Environment.start`): every listed test task of TextCraft, WebShop,
SearchQA and ALFWorld and BabyAI's easy tier. BabyAI's hard-tier oracle simulates its advice and
takes up to 9 s a task (46 s for the longest test task of each of the 23 hard levels), so the hard
tier is checked on a fixed sample: the tasks that the old 20-turn default cut in `gymwire eval
--policy oracle --tasks-per-env 20`, and the longest listed test task of each level whose oracle is
quick. `python -m gymwire.env_servers.babyai.survey --listed 40:10 --episodes --limits` plays them
all (it measured turn_limits.py). Then one real gRPC server per environment plays the test task with
the largest stated limit of each tier, and the first, with the expert's actions from ExpertAction,
with no max_turns in the Reset; the longest is also played with a nonsense action until the server
cuts it, which must be at its stated limit. About 20 s in all on one core.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest

from gymwire.client import EnvClient
from gymwire.env_servers.alfworld import ALFWorldEnvironment
from gymwire.env_servers.babyai import BabyAIEnvironment
from gymwire.env_servers.sdk import Environment, Task
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.searchqa import SearchQAEnvironment
from gymwire.env_servers.textcraft import TextCraftEnvironment
from gymwire.env_servers.webshop import WebShopEnvironment

ENVIRONMENTS: dict[str, Callable[[], Environment]] = {
    "textcraft": TextCraftEnvironment,
    "webshop": WebShopEnvironment,
    "searchqa": SearchQAEnvironment,
    "alfworld": ALFWorldEnvironment,
    "babyai": BabyAIEnvironment,
}

BABYAI_HARD_SAMPLE = frozenset(
    {
        # cut by the 20-turn default (the oracle needs 37, 26, 31, 54 and 26 turns)
        "KeyCorridorS6R3:seed=1000000",
        "MoveTwoAcrossS8N9:seed=1000007",
        "FindObjS7:seed=1000007",
        "BossLevelNoUnlock:seed=1000001",
        "BossLevelNoUnlock:seed=1000006",
        # the longest listed test task of each level whose oracle takes under a second
        "OneRoomS20:seed=1000004",
        "MoveTwoAcrossS8N9:seed=1000002",
        "Pickup:seed=1000000",
        "UnlockToUnlock:seed=1000004",
        "BlockedUnlockPickup:seed=1000003",
        "UnlockPickupDist:seed=1000001",
        "UnlockLocalDist:seed=1000009",
        "PickupAbove:seed=1000005",
        "PutNextLocalS6N4:seed=1000006",
        "GoToSeqS5R2:seed=1000000",
        "SynthS5R2:seed=1000001",
        "MiniBossLevel:seed=1000000",
    }
)


@cache
def environment(name: str) -> Environment:
    return ENVIRONMENTS[name]()


def stated_limit(task: Task, default: int) -> int:
    """The turn limit the environment reports for `task`."""
    return int(task.metadata.get("max_turns", default))


def checked_tasks(name: str) -> list[Task]:
    tasks = list(environment(name).catalogue().list(split="test"))
    if name == "babyai":
        tasks = [t for t in tasks if t.difficulty == "easy" or t.id in BABYAI_HARD_SAMPLE]
    return tasks


def expert_turns(env: Environment, task: Task, limit: int) -> int | None:
    """The turns the expert takes to solve `task` in-process, or None when it fails within `limit`."""
    episode = env.start(task)
    episode.reset()
    for turn in range(1, limit + 1):
        action = episode.expert_action()
        if action is None:
            return None
        outcome = episode.step(action)
        if outcome.terminated:
            return turn if outcome.success else None
    return None


@pytest.mark.parametrize("name", list(ENVIRONMENTS))
def test_the_expert_solves_every_test_task_within_its_limit(name):
    env = environment(name)
    default = env.describe().default_max_turns
    tasks = checked_tasks(name)
    assert {t.difficulty for t in tasks} == {t.difficulty for t in env.catalogue().list(split="test")}
    if name == "babyai":
        assert len([t for t in tasks if t.difficulty == "hard"]) == len(BABYAI_HARD_SAMPLE)  # all still listed
    failed = []
    for task in tasks:
        limit = stated_limit(task, default)
        if expert_turns(env, task, limit) is None:
            failed.append(f"{task.id} ({task.difficulty}, limit {limit})")
    assert not failed, f"the expert does not solve {len(failed)} of {len(tasks)} test tasks in their limit: {failed}"


@pytest.mark.parametrize("name", list(ENVIRONMENTS))
def test_a_server_gives_each_task_its_stated_limit(name):
    env = environment(name)
    sample: list[Task] = []
    for tier in sorted({t.difficulty for t in checked_tasks(name)}):
        tasks = [t for t in checked_tasks(name) if t.difficulty == tier]
        longest = max(tasks, key=lambda t: tuple(int(t.metadata.get(k, 0)) for k in ("max_turns", "expert_turns")))
        sample += [longest] if longest is tasks[0] else [longest, tasks[0]]
    with BackgroundServer(lambda: env) as server, EnvClient(server.address) as client:
        default = client.info().features.default_max_turns
        for task in sample:
            episode = client.reset(task.id)  # no max_turns: the task's own limit, else the server's default
            obs = episode.observation
            while not (obs.terminated or obs.truncated):
                action = episode.expert_action()
                assert action is not None, f"{task.id}: no expert action at turn {obs.turn}"
                obs = episode.step(action)
            assert obs.terminated and obs.success, f"{task.id}: truncated={obs.truncated} after {obs.turn} turns"
            assert obs.turn <= stated_limit(episode.task, default)
            episode.close()
        longest = sample[0]
        episode = client.reset(longest.id)
        obs = episode.observation
        while not (obs.terminated or obs.truncated):
            obs = episode.step("do nothing useful")
        assert obs.truncated and obs.turn == stated_limit(longest, default), f"{longest.id}: cut at {obs.turn}"
        episode.close()

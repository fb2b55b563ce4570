"""SkyRL-gym drives gymwire episodes through `gymwire.integrations.skyrl`: an expert solves a TextCraft
task through SkyRL's env API, and a dead server raises EpisodeAborted instead of giving a reward."""

from __future__ import annotations

import pytest

skyrl_gym = pytest.importorskip("skyrl_gym")

import gymwire.integrations.skyrl as gymwire_skyrl  # noqa: E402  (registers the "gymwire" env)
from gymwire.client import EnvClient, EpisodeAborted  # noqa: E402
from gymwire.env_servers.local import LocalServer  # noqa: E402
from gymwire.integrations.episodes import task_key  # noqa: E402
from gymwire.trainer.rollout import TaskRef  # noqa: E402


def _task(address: str) -> str:
    with EnvClient(address) as client:
        return task_key(TaskRef("textcraft", client.list_tasks("train", "easy", limit=1)[0].id))


def test_an_expert_solves_a_task_through_skyrl_gym():
    with LocalServer("textcraft") as server:
        env = skyrl_gym.make(
            "gymwire",
            env_config={"servers": {"textcraft": [server.address]}},
            extras={"gymwire": {"task": _task(server.address), "max_turns": 20}},
        )
        messages, metadata = env.init([{"role": "user", "content": "ignored"}])
        assert (
            messages[-1]["role"] == "user" and "Crafting commands" in messages[0]["content"] + messages[-1]["content"]
        )
        assert metadata["env"] == "textcraft" and metadata["difficulty"] == "easy"
        total, out = 0.0, None
        for _ in range(20):
            action = gymwire_skyrl._loop().run(env.episode.expert_action())
            out = env.step(action)
            total += out["reward"]
            if out["done"]:
                break
            assert out["observations"][0]["role"] == "user"
        env.close()
    assert out is not None and out["done"] and out["metadata"]["success"]
    assert out["observations"] == [] and total == pytest.approx(1.0)


def test_a_dead_server_raises_episode_aborted_never_a_reward():
    server = LocalServer("textcraft").wait()
    try:
        env = skyrl_gym.make(
            "gymwire", env_config={"servers": [server.address]}, extras={"gymwire": {"task": _task(server.address)}}
        )
        env.init([])
        server.proc.kill()
        server.proc.wait()
        with pytest.raises(EpisodeAborted):
            env.step("look")
    finally:
        server.stop()


def test_missing_servers_or_task_are_clear_errors():
    with pytest.raises(ValueError, match="servers"):
        skyrl_gym.make("gymwire", env_config={}, extras={"gymwire": {"task": "gymwire:textcraft/x"}})
    with pytest.raises(ValueError, match="task"):
        skyrl_gym.make("gymwire", env_config={"servers": ["127.0.0.1:1"]}, extras={})

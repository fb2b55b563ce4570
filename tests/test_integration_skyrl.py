"""SkyRL-gym drives gymwire episodes through `gymwire.integrations.skyrl`: an expert solves a TextCraft
task through SkyRL's env API without its text being replaced, a dead server raises EpisodeAborted
instead of giving a reward, and SkyRL-train's own config loader takes the servers from its command
line (`gymwire.integrations.skyrl_train`)."""

from __future__ import annotations

import dataclasses
import sys

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
            action = gymwire_skyrl._loop().run(env.episode.expert_action())  # "Thought: ... Action: ..."
            out = env.step(action)
            # SkyRL's generator re-tokenizes a postprocessed_action in place of the sampled tokens
            # (skyrl_gym_generator.agent_loop): the model's own text must stay what is trained on.
            assert out.get("postprocessed_action") is None
            assert out["metadata"]["parsed_action"] and out["metadata"]["parsed_action"] != action
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


def _skyrl_command_line(env_class_cfg, args: list[str]):
    """SkyRL-train's loader (`BaseConfig.from_dict_config`, strict about keys) on command-line overrides."""
    from omegaconf import OmegaConf

    return env_class_cfg.from_dict_config(OmegaConf.from_cli(args))


def test_skyrl_train_takes_the_servers_from_its_config_and_the_env_plays_an_episode():
    """`environment.skyrl_gym.gymwire.servers=[...]` through SkyRL-train's own config loader, then the env
    built the way SkyRL's generator builds it: `getattr(cfg.environment.skyrl_gym, env_class, {})`."""
    pytest.importorskip("skyrl.train.config")
    from skyrl.train.config import EnvironmentConfig

    from gymwire.integrations.skyrl_train import GymwireEnvironmentConfig, GymwireSkyRLTrainConfig

    with LocalServer("textcraft") as server:
        args = ["env_class=gymwire", f"skyrl_gym.gymwire.servers=[{server.address}]"]
        with pytest.raises(ValueError, match="Invalid fields {'gymwire'}"):  # SkyRL's own section has no such key
            _skyrl_command_line(EnvironmentConfig, args)
        environment = _skyrl_command_line(GymwireEnvironmentConfig, args)
        assert dataclasses.fields(GymwireSkyRLTrainConfig)  # the top-level config SkyRL's entrypoint parses
        assert environment.skyrl_gym.max_env_workers == 32  # SkyRL's own keys keep their defaults
        env_config = getattr(environment.skyrl_gym, environment.env_class, dict())
        assert list(env_config.servers) == [server.address]
        env = skyrl_gym.make(
            environment.env_class,
            env_config=env_config,
            extras={"extra_info": {"gymwire": {"task": _task(server.address), "max_turns": 20}}},
        )
        env.init([])
        out = None
        for _ in range(20):
            out = env.step(gymwire_skyrl._loop().run(env.episode.expert_action()))
            if out["done"]:
                break
        env.close()
    assert out is not None and out["metadata"]["success"] and out["reward"] == pytest.approx(1.0)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="SkyRL 0.3.0's SkyRLTrainConfig needs Python 3.12 to build")
def test_skyrl_train_command_line_parses_with_the_gymwire_section():
    """The whole config (SkyRLTrainConfig.__post_init__ imports skyrl.tinker.types, whose TypedDicts
    pydantic refuses on Python 3.11)."""
    pytest.importorskip("skyrl.train.config")
    from gymwire.integrations.skyrl_train import GymwireSkyRLTrainConfig

    cfg = GymwireSkyRLTrainConfig.from_cli_overrides(["environment.skyrl_gym.gymwire.servers=[127.0.0.1:1]"])
    assert cfg.environment.env_class == "gymwire"
    assert list(cfg.environment.skyrl_gym.gymwire.servers) == ["127.0.0.1:1"]

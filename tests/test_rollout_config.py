"""A run config's `rollout:` section is the RolloutConfig the engine takes, and a stage's mix entries
are the EnvConfigs its episodes play with: no config object is copied into another. The transport a
RolloutConfig names is the one every episode runs on, against a real server."""

from __future__ import annotations

import asyncio
import dataclasses
import typing
import warnings
from dataclasses import replace

import pytest

from gymwire.client import EnvPool
from gymwire.client.transports import TRANSPORTS
from gymwire.trainer.config import ConfigError, env_configs, parse_config
from gymwire.trainer.rollout import EnvConfig, RolloutConfig, RolloutEngine, TaskRef, TurnSource, text_turn
from gymwire.trainer.settings import Transport
from gymwire.trainer.types import SamplingParams

ENVS = {"a": "127.0.0.1:1", "b": "127.0.0.1:2", "c": "127.0.0.1:3"}
BASE = {"envs": ENVS, "stages": [{"name": "one", "steps": 1, "mix": [{"env": "a"}]}]}


def test_the_rollout_section_is_the_engines_config():
    rollout = {"group_size": 4, "max_new_tokens": 64, "temperature": 0.7, "top_p": 0.9, "transport": "session"}
    run = parse_config({**BASE, "rollout": {**rollout, "system_prompt": "Be brief.", "abort_retries": 1}})
    assert isinstance(run.rollout, RolloutConfig)
    assert run.rollout.sampling == SamplingParams(max_new_tokens=64, temperature=0.7, top_p=0.9)
    assert (run.rollout.transport, run.rollout.system_prompt, run.rollout.abort_retries) == ("session", "Be brief.", 1)
    assert run.grpo.temperature == 0.7  # the update's log-probs are of the sampled distribution
    assert parse_config(BASE).rollout == RolloutConfig()  # the engine's defaults are the config's (multiplex)


def test_a_transport_the_client_does_not_know_is_refused():
    assert set(typing.get_args(Transport)) == set(TRANSPORTS)
    with pytest.raises(ConfigError, match="rollout.transport: 'stream' is not one of multiplex, session, unary"):
        parse_config({**BASE, "rollout": {"transport": "stream"}})
    with pytest.raises(ValueError, match="transport must be one of multiplex, session, unary, got 'stream'"):
        RolloutConfig(transport="stream")  # type: ignore[arg-type]


def test_evaluation_derives_its_rollout_config_from_the_runs():
    rollout = {"max_new_tokens": 64, "temperature": 0.7, "top_p": 0.9, "max_total_tokens": 3000, "transport": "unary"}
    run = parse_config({**BASE, "rollout": rollout, "eval": {"max_new_tokens": 32, "temperature": 0.5}})
    assert run.eval_rollout() == replace(run.rollout, max_new_tokens=32, temperature=0.5)
    assert run.eval_rollout().sampling == SamplingParams(max_new_tokens=32, temperature=0.5, top_p=0.9)
    unset = parse_config({**BASE, "rollout": rollout}).eval_rollout()  # eval.max_new_tokens unset: the run's
    assert (unset.max_new_tokens, unset.temperature) == (64, 1.0)


def test_mix_entries_are_the_env_configs():
    stages = [
        {
            "name": "one",
            "steps": 1,
            "mix": [{"env": "a", "max_turns": 5, "history_turns": 2, "difficulty": "easy"}, {"env": "b"}],
        },
        {"name": "two", "steps": 1, "mix": [{"env": "a", "max_turns": 9}, {"env": "b", "show_valid_actions": True}]},
    ]
    run = parse_config({**BASE, "stages": stages})
    first = run.stages[0].mix
    configs = env_configs(first)
    assert configs["a"] is first[0] and configs["b"] is first[1] and isinstance(first[0], EnvConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first[0].max_turns = 1  # type: ignore[misc]
    # Evaluation: the first stage naming an env sets its turn limit and action lists; no history window.
    evaluated = {env: (c.max_turns, c.show_valid_actions, c.history_turns) for env, c in run.eval_env_configs().items()}
    assert evaluated == {"a": (5, False, None), "b": (0, False, None)}
    capped = replace(run, eval=replace(run.eval, max_turns=3)).eval_env_configs()
    assert {env: (c.max_turns, c.show_valid_actions) for env, c in capped.items()} == {
        "a": (3, False),
        "b": (3, False),
        "c": (3, False),  # in no stage: the environment's own switches, at the cap
    }


class NotesTransports(TurnSource):
    """One guess a turn, noting the transport each episode runs on."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def next_turn(self, episode, conversation):
        self.seen.append(episode.transport)
        return text_turn(conversation, "Action: guess 5")


class ScriptedEngine(RolloutEngine):
    """The rollout engine with its episode loop and config as they are; the turns come from `source`."""

    source: TurnSource

    def turns(self, sampling):
        return self.source


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_episodes_run_on_the_configured_transport(guess_server, transport):
    source = NotesTransports()

    async def main():
        async with EnvPool([guess_server.address]) as pool:
            config = RolloutConfig(transport=transport)
            engine = ScriptedEngine(pool, None, config, {"guess": EnvConfig(max_turns=2)})  # type: ignore[arg-type]
            engine.source = source
            return await engine.group(TaskRef("guess", "test-hard-3"), 2, base_seed=0)

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the engine calls the client as it asks today
        group = asyncio.run(main())
    assert all(not t.aborted and 1 <= t.turns <= 2 for t in group)
    assert source.seen and set(source.seen) == {transport}

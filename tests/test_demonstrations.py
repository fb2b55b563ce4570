"""Expert demonstrations are the sequences rollouts build: one episode loop, one opening prompt.

Real TextCraft and Guess servers, the real default model's tokenizer. The rollout engine is given
a policy that writes the expert's turns as tokens (tokenised here independently of the trainer),
so any difference between the two sequences is a difference between the two code paths.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Any

import pytest
from transformers import AutoTokenizer

from gymwire.client import EnvPool
from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.textcraft import TextCraftEnvironment
from gymwire.trainer.demonstrations import collect_demonstrations
from gymwire.trainer.masks import PLAIN_OFF, PLAIN_ON
from gymwire.trainer.model import resolve_model
from gymwire.trainer.policy import Policy
from gymwire.trainer.records import write_trajectory
from gymwire.trainer.rollout import EnvConfig, RolloutConfig, RolloutEngine, TaskRef
from gymwire.trainer.types import Generation, SamplingParams, Trajectory
from tests.conftest import gymwire_cli

SYSTEM = "You are a careful agent."
SETTINGS = {"textcraft": EnvConfig(), "guess": EnvConfig(show_valid_actions=True, history_turns=1)}
REFS = [
    TaskRef("textcraft", "goal:blue_dye"),
    TaskRef("textcraft", "goal:oak_planks"),
    TaskRef("guess", "test-hard-45"),
    TaskRef("guess", "test-easy-0"),
]


class WritesTheseTurns(Policy):
    """A policy whose completions are given texts, as the model's tokens plus its end-of-turn token."""

    def __init__(self, tokenizer: Any, turns: list[str]) -> None:
        self.name, self.tokenizer, self.turns = "scripted", tokenizer, list(turns)
        self.stop_token_ids = [tokenizer.convert_tokens_to_ids("<|im_end|>")]

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        ids = self.tokenizer(self.turns.pop(0), add_special_tokens=False)["input_ids"] + self.stop_token_ids
        return self.make_generation(ids, [-0.5] * len(ids), params.max_new_tokens)

    def update_weights(self, source: Any) -> None:
        raise NotImplementedError


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(resolve_model("smollm2")))


@pytest.fixture(scope="module")
def played(tokenizer) -> list[tuple[Trajectory, Trajectory]]:
    """(demonstration, rollout of the same text turns) for every task."""
    with BackgroundServer(TextCraftEnvironment) as textcraft, BackgroundServer(GuessEnvironment) as guess:

        async def main():
            async with EnvPool([textcraft.address, guess.address]) as pool:
                demos = await collect_demonstrations(pool, REFS, tokenizer, SETTINGS, 2048, SYSTEM)
                assert [(d.env, d.task_id) for d in demos] == [(r.env, r.task_id) for r in REFS]
                config = RolloutConfig(max_new_tokens=200, max_total_tokens=2048, system_prompt=SYSTEM)
                rollouts = []
                for ref, demo in zip(REFS, demos, strict=True):
                    turns = [m["content"] for m in demo.messages if m["role"] == "assistant"]
                    engine = RolloutEngine(pool, WritesTheseTurns(tokenizer, turns), config, SETTINGS)
                    rollouts.append(await engine.episode(ref, "rollout"))
                return list(zip(demos, rollouts, strict=True))

        return asyncio.run(main())


def test_demonstration_is_what_a_rollout_of_its_turns_builds(played):
    for demo, rollout in played:
        assert demo.success and rollout.success and demo.turns == rollout.turns > 1
        assert demo.token_ids == rollout.token_ids and demo.loss_mask == rollout.loss_mask
        assert demo.prompt_length == rollout.prompt_length and demo.messages == rollout.messages
        assert [asdict(w) | {"logprobs": []} for w in demo.windowed_turns] == [
            asdict(w) | {"logprobs": []} for w in rollout.windowed_turns
        ]
        fields = (
            "turn",
            "parsed_action",
            "action_valid",
            "reward",
            "terminated",
            "truncated",
            "info",
            "generated_tokens",
        )
        assert [[getattr(s, f) for f in fields] for s in demo.steps] == [
            [getattr(s, f) for f in fields] for s in rollout.steps
        ]
        assert demo.generated_tokens == sum(s.generated_tokens for s in demo.steps) > 0
    assert any(d.windowed_turns for d, _ in played if d.env == "guess")  # the history window was exercised


def test_demonstration_is_the_chat_template_rendering(played, tokenizer):
    """Without a window the sequence is the template's rendering of the chat; the expert's turns
    (each ending with the end-of-turn token) are the only tokens trained on."""
    for demo, _ in played:
        if demo.env != "textcraft":
            continue
        assert demo.messages[0] == {"role": "system", "content": SYSTEM}
        rendered = tokenizer.apply_chat_template(demo.messages, tokenize=False)
        assert demo.token_ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]
        trained = [t for t, m in zip(demo.token_ids, demo.loss_mask, strict=True) if m]
        turns = "".join(m["content"] + "<|im_end|>" for m in demo.messages if m["role"] == "assistant")
        assert tokenizer.decode(trained) == turns


def test_masks_shows_the_turns_of_a_stored_demonstration(played, tmp_path):
    path = tmp_path / "demos.jsonl"
    with path.open("w") as sink:
        for demo, _ in played:
            write_trajectory(sink, demo)
    assert all(json.loads(line)["trajectory"]["steps"] for line in path.read_text().splitlines())
    shown = gymwire_cli("masks", str(path), "--episode", "0", "--plain", timeout=120)
    assert shown.returncode == 0, shown.stderr
    demo = played[0][0]
    for step in demo.steps:
        assert f"turn {step.turn}: action {step.parsed_action!r} valid, reward {step.reward:g}" in shown.stdout
    first_turn = demo.messages[2]["content"]
    assert f"{PLAIN_ON}{first_turn}<|im_end|>{PLAIN_OFF}" in shown.stdout

"""Turn-level credit (GiGPO): hand-computed advantages, the text fallback of anchors, anchors recorded by
real rollouts against a real SDK server that sends state keys, and GRPO steps that train each turn's
tokens with that turn's advantage on the real tiny model."""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from dataclasses import replace

import pytest
import torch

from gymwire.client import EnvPool
from gymwire.env_servers.sdk import EnvDescription, Environment, Episode, StepOutcome, Task, TaskCatalogue
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.trainer.config import ConfigError, parse_config
from gymwire.trainer.grpo_loss import group_advantages
from gymwire.trainer.microbatches import Batching, build_microbatches, split_minibatches
from gymwire.trainer.rollout import EnvConfig, NoTurn, TaskRef, TurnSource, play_episode, state_anchor, text_turn
from gymwire.trainer.settings import GRPOConfig
from gymwire.trainer.turn_credit import discounted_returns, token_advantages, turn_advantages
from gymwire.trainer.types import StepRecord, Trajectory, TurnSample
from gymwire.v1 import environment_pb2 as pb

torch.set_num_threads(1)  # the test machine is shared


def step(turn: int, anchor: str, reward: float = 0.0, tokens: int = 0) -> StepRecord:
    return StepRecord(turn, "", True, reward, False, False, anchor=anchor, generated_tokens=tokens)


def episode(group: str, turns: list[tuple[str, float]], task: str = "t") -> Trajectory:
    traj = Trajectory(env="test", task_id=task, group_id=group)
    for k, (anchor, reward) in enumerate(turns):
        traj.add_step(step(k, anchor, reward))
    return traj


# The hand-made group: A wins in two turns, B wastes one turn standing at s0 and then wins, C never wins.
# With gamma 0.5 the returns from each turn are A (0.5, 1), B (0.25, 0.5, 1), C (0, 0).
A = [("s0", 0.0), ("s1", 1.0)]
B = [("s0", 0.0), ("s0", 0.0), ("s1", 1.0)]
C = [("s0", 0.0), ("s2", 0.0)]


# ------------------------------------------------------------------------------------------------
# The maths, by hand
# ------------------------------------------------------------------------------------------------


def test_discounted_returns() -> None:
    assert discounted_returns([0.0, 0.0, 1.0], 0.5) == [0.25, 0.5, 1.0]
    assert discounted_returns([1.0, 2.0], 1.0) == [3.0, 2.0]
    assert discounted_returns([], 0.95) == []


def test_two_level_advantages_centred_match_the_hand_computed_values() -> None:
    adv = turn_advantages([episode("g", A), episode("g", B), episode("g", C)], gamma=0.5, scale_rewards=False)
    # Episode level: returns (1, 1, 0), mean 2/3.
    assert adv.advantages == pytest.approx([1 / 3, 1 / 3, -2 / 3])
    # Anchor s0 holds A0 (0.5), B0 (0.25), B1 (0.5), C0 (0): mean 0.3125. s1 holds A1 and B2, both 1: 0.
    # s2 holds C1 alone: 0.
    a, b, c = adv.turn_advantages
    assert a == pytest.approx([1 / 3 + 0.1875, 1 / 3])
    assert b == pytest.approx([1 / 3 - 0.0625, 1 / 3 + 0.1875, 1 / 3])
    assert c == pytest.approx([-2 / 3 - 0.3125, -2 / 3])
    assert adv.anchor_groups == 2 and adv.step_only_groups == 0 and adv.skipped_groups == 0

    group = [episode("g", A), episode("g", B), episode("g", C)]
    half = turn_advantages(group, gamma=0.5, weight=0.5, scale_rewards=False)
    assert half.turn_advantages[0] == pytest.approx([1 / 3 + 0.5 * 0.1875, 1 / 3])


def test_two_level_advantages_scaled_by_the_unbiased_std() -> None:
    eps = 1e-4
    adv = turn_advantages([episode("g", A), episode("g", B), episode("g", C)], gamma=0.5, eps=eps)
    episode_std = math.sqrt(((1 / 3) ** 2 * 2 + (2 / 3) ** 2) / 2)  # of (1, 1, 0)
    s0_std = math.sqrt((0.1875**2 * 2 + 0.0625**2 + 0.3125**2) / 3)  # of (0.5, 0.25, 0.5, 0)
    e = [x / (episode_std + eps) for x in (1 / 3, 1 / 3, -2 / 3)]
    s = [x / (s0_std + eps) for x in (0.1875, -0.0625, 0.1875, -0.3125)]  # A0, B0, B1, C0
    assert adv.advantages == pytest.approx(e)
    assert adv.turn_advantages[0] == pytest.approx([e[0] + s[0], e[0]])
    assert adv.turn_advantages[1] == pytest.approx([e[1] + s[1], e[1] + s[2], e[1]])
    assert adv.turn_advantages[2] == pytest.approx([e[2] + s[3], e[2]])
    # The episode level is GRPO's own.
    assert adv.advantages == pytest.approx(group_advantages([episode("g", t) for t in (A, B, C)], eps=eps).advantages)


def test_anchor_groups_stay_within_their_grpo_group_and_task() -> None:
    alone = turn_advantages([episode("g", A), episode("g", B), episode("g", C)], gamma=0.5)
    # Another group playing the same task from the same states, with other returns: nothing changes in "g".
    other = [episode("h", [("s0", 0.0), ("s1", 0.0)]), episode("h", [("s0", 1.0)])]
    mixed = turn_advantages([episode("g", A), *other, episode("g", B), episode("g", C)], gamma=0.5)
    by_group = [t for t, traj in zip(mixed.turn_advantages, mixed.trajectories, strict=True) if traj.group_id == "g"]
    assert by_group == alone.turn_advantages
    # Within a group, equal anchors of different tasks are different states.
    # (Pooled, s0's returns would be 0.5 and 1; apart, each is alone and the equal-reward group is skipped.)
    split = turn_advantages([episode("g", A, task="x"), episode("g", [("s0", 1.0)], task="y")], gamma=0.5)
    assert split.skipped_groups == 1 and split.anchor_groups == 0


def test_equal_episode_rewards_still_credit_turns_from_shared_states() -> None:
    """A and B both win: GRPO has nothing to learn, but from s0 A's turn led to a win sooner than B's first."""
    grpo = group_advantages([episode("g", A), episode("g", B)])
    assert grpo.skipped_groups == 1 and not grpo.trajectories
    adv = turn_advantages([episode("g", A), episode("g", B)], gamma=0.5, scale_rewards=False)
    assert adv.step_only_groups == 1 and adv.skipped_groups == 0 and adv.advantages == [0.0, 0.0]
    mean = (0.5 + 0.25 + 0.5) / 3
    assert adv.turn_advantages[0] == pytest.approx([0.5 - mean, 0.0])
    assert adv.turn_advantages[1] == pytest.approx([0.25 - mean, 0.5 - mean, 0.0])
    # Equal rewards and equal returns from every shared state: nothing to learn at either level.
    same = turn_advantages([episode("g", A), episode("g", A)], gamma=0.5)
    assert same.skipped_groups == 1 and not same.trajectories and same.step_only_groups == 0


def test_turns_without_anchors_compare_with_nothing() -> None:
    """Records written before anchors existed: episode-level credit only."""
    old = [episode("g", [("", 0.0), ("", 1.0)]), episode("g", [("", 0.0), ("", 0.0)])]
    adv = turn_advantages(old, gamma=0.5)
    assert adv.anchor_groups == 0
    assert adv.turn_advantages == [[a, a] for a in adv.advantages]
    record = {"turn": 0, "parsed_action": "x", "action_valid": True, "reward": 1.0, "terminated": True}
    loaded = Trajectory(env="e", task_id="t", group_id="g", steps=[{**record, "truncated": False}])  # an old JSONL row
    assert loaded.steps[0].anchor == ""


def test_aborted_and_nonfinite_are_left_out() -> None:
    aborted = episode("g", [("s0", 0.0)])
    aborted.aborted = True
    nan = episode("h", [("s0", float("nan"))])
    adv = turn_advantages([episode("g", A), episode("g", C), aborted, nan, episode("h", A)], gamma=0.5)
    assert adv.aborted == 1 and adv.nonfinite_groups == 1 and len(adv.trajectories) == 2


def test_text_fallback_anchor_when_the_server_sends_no_key() -> None:
    text = "You are in a kitchen."
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    assert state_anchor(pb.Observation(text=text)) == f"text:{digest}"
    assert state_anchor(pb.Observation(text=text, state_key="kitchen/fridge-open")) == "kitchen/fridge-open"
    assert state_anchor(pb.Observation(text="You are in a hall.")) != state_anchor(pb.Observation(text=text))
    # Turns from equal texts are one anchor group.
    seen = state_anchor(pb.Observation(text=text))
    moved = state_anchor(pb.Observation(text="You are in a hall."))
    adv = turn_advantages(
        [episode("g", [(seen, 0.0), (moved, 1.0)]), episode("g", [(seen, 0.0)])], gamma=1.0, scale_rewards=False
    )
    assert adv.anchor_groups == 1 and adv.turn_advantages == [[0.5 + 0.5, 0.5], [-0.5 - 0.5]]


# ------------------------------------------------------------------------------------------------
# Per-token advantages, packing and configuration
# ------------------------------------------------------------------------------------------------


def sequence(group: str, turns: list[tuple[str, float]], lengths: list[int], prompt: int = 40) -> Trajectory:
    """A trajectory whose token ids and masks follow its turns: a shared prompt, then per turn its sampled
    tokens (mask 1) and two tokens of environment reply (mask 0)."""
    traj = episode(group, turns)
    traj.token_ids, traj.loss_mask = list(range(100, 100 + prompt)), [0] * prompt
    for k, n in enumerate(lengths):
        traj.steps[k].generated_tokens = n
        traj.token_ids += [1000 * (k + 1) + i for i in range(n)] + [7, 8]
        traj.loss_mask += [1] * n + [0, 0]
    traj.logprobs = [-0.5 if m else 0.0 for m in traj.loss_mask]
    return traj


def test_each_turns_tokens_carry_its_advantage() -> None:
    traj = sequence("g", B, [2, 3, 1], prompt=4)
    values, windowed = token_advantages(traj, [0.1, 0.2, 0.3])
    assert values == [0.0] * 4 + [0.1, 0.1, 0.0, 0.0, 0.2, 0.2, 0.2, 0.0, 0.0, 0.3, 0.0, 0.0]
    assert windowed == []
    # The last turn as a windowed turn: masked out of the sequence, carried by its own row.
    start = traj.loss_mask.index(1, 11)
    windowed_traj = replace(
        traj,
        loss_mask=[m if i < start else 0 for i, m in enumerate(traj.loss_mask)],
        windowed_turns=[TurnSample(traj.token_ids, [0] * start + traj.loss_mask[start:], traj.logprobs, start)],
    )
    values, windowed = token_advantages(windowed_traj, [0.1, 0.2, 0.3])
    assert values[start] == 0.0 and values[4] == 0.1 and windowed == [0.3]
    # Records that do not describe the sequence are refused, not guessed at.
    with pytest.raises(ValueError, match="generated_tokens match the sequence"):
        token_advantages(replace(traj, steps=[]), [])
    with pytest.raises(ValueError, match="3 turns"):
        token_advantages(traj, [0.1])


@pytest.mark.parametrize("share_prefix", [True, False])
def test_microbatches_carry_per_token_advantages(share_prefix: bool) -> None:
    group = [sequence("g", A, [3, 2]), sequence("g", B, [2, 2, 4]), sequence("g", C, [5, 1])]
    adv = turn_advantages(group, gamma=0.5)
    batching = Batching(4096, 0, "tokens", share_prefix, torch.device("cpu"))
    (batch,) = build_microbatches(adv, batching)
    assert batch.advantages.shape == batch.mask.shape
    assert bool(share_prefix) == (batch.shared > 0)
    for row in range(3):
        held = batch.input_ids[row][batch.attention_mask[row] > 0].tolist()
        (e,) = [e for e, t in enumerate(adv.trajectories) if t.token_ids[: len(held)] == held]
        turns = adv.turn_advantages[e]
        for col, token in enumerate(batch.input_ids[row, batch.positions].tolist()):
            if batch.mask[row, col]:
                assert float(batch.advantages[row, col]) == pytest.approx(turns[token // 1000 - 1])
    # Mini-batches keep each episode's turn advantages with it.
    parts = split_minibatches(adv, 2)
    assert [p.turn_advantages for p in parts] == [adv.turn_advantages[:2], adv.turn_advantages[2:]]
    # Episode-level advantages stay one per row.
    (plain,) = build_microbatches(group_advantages(group), batching)
    assert plain.advantages.shape == (3,)


def config_with(grpo: dict) -> dict:
    stage = {"name": "s", "steps": 1, "mix": [{"env": "corridor"}]}
    return {"envs": {"corridor": "127.0.0.1:1"}, "stages": [stage], "grpo": grpo}


def test_config_selects_turn_credit_and_refuses_bad_values() -> None:
    assert parse_config(config_with({})).grpo.advantage == "episode"
    grpo = parse_config(config_with({"advantage": "turn", "turn_gamma": 0.9, "turn_weight": 0.5})).grpo
    assert (grpo.advantage, grpo.turn_gamma, grpo.turn_weight) == ("turn", 0.9, 0.5)
    assert GRPOConfig().turn_gamma == 0.95 and GRPOConfig().turn_weight == 1.0
    for bad, message in [
        ({"advantage": "step"}, "grpo.advantage: 'step' is not one of episode, turn"),
        ({"turn_gamma": 1.5}, r"grpo.turn_gamma: turn_gamma must be within \[0, 1\]"),
        ({"turn_weight": -1}, "grpo.turn_weight: turn_weight must be a finite number >= 0"),
        ({"turn_gamma": "fast"}, "grpo.turn_gamma: expected float"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config(config_with(bad))


# ------------------------------------------------------------------------------------------------
# Real rollouts against a real server that sends state keys, and GRPO steps on the tiny model
# ------------------------------------------------------------------------------------------------

ROOMS = 3  # the exit is this many rooms east of the start
_ACTION = re.compile(r"Action:\s*(\w+)")


class CorridorEpisode(Episode):
    """Walk east to the exit. The replies do not say where the agent is: only the state key does."""

    def __init__(self) -> None:
        self.room = 0

    def reset(self) -> str:
        return f"You are at the west end of a corridor. The exit is {ROOMS} rooms east."

    def step(self, text: str) -> StepOutcome:
        match = _ACTION.search(text)
        action = match.group(1) if match else ""
        if action == "wait":
            return StepOutcome("You wait.", parsed_action=action)
        if action != "east":
            return StepOutcome("Not understood. Answer with: Action: east (or wait).", action_valid=False)
        self.room += 1
        if self.room == ROOMS:
            return StepOutcome("You reach the exit.", reward=1.0, terminated=True, success=True, parsed_action=action)
        return StepOutcome("You walk east.", parsed_action=action)

    def state_key(self) -> str | None:
        return f"room {self.room}"


class UnkeyedEpisode(CorridorEpisode):
    def state_key(self) -> str | None:
        return None


class Corridor(Environment):
    episode_class: type[CorridorEpisode] = CorridorEpisode

    def describe(self) -> EnvDescription:
        return EnvDescription(
            name="corridor",
            version="1.0.0",
            description="Walk east to the exit.",
            instruction="Reach the exit. Each turn, answer with one line: Action: east (or wait).",
            action_grammar="Action: east | Action: wait",
            default_max_turns=4,
        )

    def catalogue(self) -> TaskCatalogue:
        return TaskCatalogue([Task("corridor-1", "train", "easy", "walk", {})])

    def start(self, task: Task) -> CorridorEpisode:
        return self.episode_class()


class UnkeyedCorridor(Corridor):
    episode_class = UnkeyedEpisode


class ScriptedTurns(TurnSource):
    """Turns written as text from a fixed script, token by token as a model's turns would be built."""

    def __init__(self, tokenizer, actions: list[str]) -> None:
        self.tokenizer = tokenizer
        self.actions = list(actions)

    async def next_turn(self, episode, conversation):
        if not self.actions:
            return NoTurn("the script is over", truncated=False)
        return text_turn(conversation, f"Action: {self.actions.pop(0)}")


SCRIPTS = [["east"] * 3, ["east", "wait", "east", "east"], ["wait"] * 4]


def play_group(address: str, tokenizer, settings: EnvConfig, group_id: str = "g") -> list[Trajectory]:
    async def main():
        async with EnvPool([address]) as pool:
            return await asyncio.gather(
                *(
                    play_episode(
                        pool,
                        TaskRef("corridor", "corridor-1"),
                        ScriptedTurns(tokenizer, script),
                        settings,
                        group_id=group_id,
                        max_total_tokens=2048,
                    )
                    for script in SCRIPTS
                )
            )

    return list(asyncio.run(main()))


@pytest.fixture(scope="module")
def keyed_group(tokenizer) -> list[Trajectory]:
    with BackgroundServer(Corridor) as server:
        return play_group(server.address, tokenizer, EnvConfig(max_turns=4))


@pytest.mark.slow
def test_a_rollout_records_the_state_each_turn_acted_from(keyed_group, tokenizer) -> None:
    assert [[s.anchor for s in t.steps] for t in keyed_group] == [
        ["room 0", "room 1", "room 2"],
        ["room 0", "room 1", "room 1", "room 2"],
        ["room 0"] * 4,
    ]
    assert [t.reward for t in keyed_group] == [1.0, 1.0, 0.0] and keyed_group[2].truncated
    assert all(sum(s.generated_tokens for s in t.steps) == sum(t.loss_mask) > 0 for t in keyed_group)

    # The same episodes from a server that sends no keys: anchors are the hashes of the texts the turns
    # acted from; "You walk east." from rooms 1 and 2 is one anchor, where the keys told them apart.
    with BackgroundServer(UnkeyedCorridor) as server:
        unkeyed = play_group(server.address, tokenizer, EnvConfig(max_turns=4))
    start = f"You are at the west end of a corridor. The exit is {ROOMS} rooms east."

    def text(s: str) -> str:
        return state_anchor(pb.Observation(text=s))

    assert [[s.anchor for s in t.steps] for t in unkeyed] == [
        [text(start), text("You walk east."), text("You walk east.")],
        [text(start), text("You walk east."), text("You wait."), text("You walk east.")],
        [text(start), text("You wait."), text("You wait."), text("You wait.")],
    ]


def expected_loss(per_turn: list[list[float]], trajectories: list[Trajectory], normalization: str) -> float:
    """With the ratio exactly 1, no KL and no importance weight, every trained token's loss is minus its
    advantage: the step's loss is minus the mean advantage over tokens ("tokens"), or over each episode's
    tokens and then over episodes ("sequences")."""
    sums = [
        sum(a * s.generated_tokens for a, s in zip(turns, t.steps, strict=True))
        for turns, t in zip(per_turn, trajectories, strict=True)
    ]
    counts = [sum(s.generated_tokens for s in t.steps) for t in trajectories]
    if normalization == "tokens":
        return -sum(sums) / sum(counts)
    return -sum(s / n for s, n in zip(sums, counts, strict=True)) / len(trajectories)


@pytest.mark.slow
def test_grpo_trains_each_turn_with_its_own_advantage(model_dir, tokenizer, keyed_group) -> None:
    from gymwire.trainer.grpo import GRPOUpdater

    config = GRPOConfig(advantage="turn", beta=0.0, importance_sampling="none", learning_rate=1e-5)
    adv = turn_advantages(keyed_group, gamma=config.turn_gamma, eps=config.advantage_eps)
    assert adv.trajectories == keyed_group
    # room 0 is shared by all three episodes, room 1 by the two winners (one of which waited there).
    assert adv.anchor_groups == 3 and len(set(adv.turn_advantages[0])) > 1
    updater = GRPOUpdater(model_dir, config)
    turn = updater.objective(keyed_group)
    assert turn["loss"] == pytest.approx(expected_loss(adv.turn_advantages, keyed_group, "sequences"), rel=1e-5)
    assert turn["tokens"] == sum(sum(t.loss_mask) for t in keyed_group)
    updater.config = replace(config, loss_normalization="tokens")
    tokens = updater.objective(keyed_group)["loss"]
    assert tokens == pytest.approx(expected_loss(adv.turn_advantages, keyed_group, "tokens"), rel=1e-5)

    # Every token carrying its episode's advantage instead is another objective; turn_weight 0 is that one.
    grpo = group_advantages(keyed_group, eps=config.advantage_eps)
    whole = [[a] * len(t.steps) for a, t in zip(grpo.advantages, keyed_group, strict=True)]
    updater.config = replace(config, advantage="episode")
    episode_loss = updater.objective(keyed_group)["loss"]
    assert episode_loss == pytest.approx(expected_loss(whole, keyed_group, "sequences"), rel=1e-5)
    assert abs(episode_loss - turn["loss"]) > 0.01
    updater.config = replace(config, turn_weight=0.0)
    assert updater.objective(keyed_group)["loss"] == pytest.approx(episode_loss, rel=1e-5)

    # The prompt the group shares, run once or per row: the same objective.
    updater.config = config
    unshared = GRPOUpdater(model_dir, replace(config, share_prefix=False))
    assert unshared.objective(keyed_group) == pytest.approx(turn, rel=1e-5, abs=1e-7)

    # A real step trains on it.
    metrics = updater.step(keyed_group)
    assert metrics["updated"] == 1.0 and metrics["sequences"] == 3
    assert metrics["anchor_groups"] == 3.0 and metrics["step_only_groups"] == 0.0
    flat = [a for turns in adv.turn_advantages for a in turns]
    assert metrics["advantage_abs_mean"] == pytest.approx(sum(abs(a) for a in flat) / len(flat))


@pytest.mark.slow
def test_windowed_turns_carry_their_turns_advantage(model_dir, tokenizer) -> None:
    with BackgroundServer(Corridor) as server:
        group = play_group(server.address, tokenizer, EnvConfig(max_turns=4, history_turns=1))
    assert [len(t.windowed_turns) for t in group] == [1, 2, 2]  # turns after the first two
    from gymwire.trainer.grpo import GRPOUpdater

    config = GRPOConfig(advantage="turn", beta=0.0, importance_sampling="none")
    adv = turn_advantages(group, gamma=config.turn_gamma, eps=config.advantage_eps)
    objective = GRPOUpdater(model_dir, config).objective(group)
    assert objective["loss"] == pytest.approx(expected_loss(adv.turn_advantages, group, "sequences"), rel=1e-5)
    assert objective["tokens"] == sum(s.generated_tokens for t in group for s in t.steps)

"""BabyAI text environment: grammar, messages, reward, task ids, splits, oracle and determinism.

Everything runs real minigrid levels. Grammar cases edit one real 8x8 room (GoToRedBallNoDists, whose
mission is "go to the red ball") so that each message has a known cause.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from minigrid.core.world_object import Ball, Box, Door, Key, Wall, WorldObj

from gymwire.env_servers.babyai import BabyAIEnvironment, BabyAIEpisode
from gymwire.env_servers.babyai.levels import AGENTGYM_LEVELS, DEFAULT_TIERS, EXCLUDED_LEVELS
from gymwire.env_servers.babyai.macros import (
    BARRIER,
    DROP_BLOCKED,
    NOT_RECOGNIZED,
    NOTHING_TO_DROP,
    NOTHING_TO_TOGGLE,
    extract_action,
)
from gymwire.env_servers.babyai.solvable import BOT_FAILURES, never_succeeds
from gymwire.env_servers.sdk import UnknownTask
from tests.conftest import json_in_fresh_process

EAST, SOUTH = 0, 1


@pytest.fixture(scope="module")
def env() -> BabyAIEnvironment:
    return BabyAIEnvironment()


def room(*placements: tuple[tuple[int, int], WorldObj], agent=(1, 1), facing=EAST, **options) -> BabyAIEpisode:
    """An episode in an emptied 8x8 room (walls on the border) holding just `placements`."""
    episode = BabyAIEpisode("GoToRedBallNoDists", 0, **options)
    episode.reset()
    world = episode.env
    for x in range(1, world.width - 1):
        for y in range(1, world.height - 1):
            world.grid.set(x, y, None)
    for (x, y), obj in placements:
        world.grid.set(x, y, obj)
        obj.init_pos = obj.cur_pos = (x, y)
    world.agent_pos, world.agent_dir = np.array(agent), facing
    world.instrs.reset_verifier(world)  # the mission's red ball is wherever one was placed
    episode.known[:] = False
    episode.look()
    return episode


def wall_with_door(door: Door) -> list[tuple[tuple[int, int], WorldObj]]:
    """A wall down column 4 with `door` at (4, 3): the room becomes two."""
    return [((4, y), Wall()) for y in range(1, 7) if y != 3] + [((4, 3), door)]


# -- description ---------------------------------------------------------------------------------


def test_describe(env):
    info = env.describe()
    assert info.name == "babyai"
    assert info.provides_valid_actions and info.provides_expert
    # Every listed test task states its level's limit (a Reset without max_turns gets it); the
    # default (AgentGym's 20) is for the levels outside the survey.
    limits = [int(t.metadata["max_turns"]) for t in env.catalogue().list(split="test")]
    assert info.default_max_turns == 20 and max(limits) == 140 and min(limits) == 20
    assert "Thought:" in info.instruction and "Action:" in info.instruction
    for phrase in ("go to <color> <type> <k>", "pickup", "toggle and go through", "check available actions"):
        assert phrase in info.instruction or phrase in info.action_grammar


# -- observation text ----------------------------------------------------------------------------


def test_observation_text_exact():
    episode = room(((3, 1), Ball("red")), ((2, 3), Key("grey")))
    outcome = episode.step("turn right")
    outcome = episode.step("turn left")  # back to the start pose: the text describes the same view
    assert outcome.observation == (
        "In front of you in this room, you can see several objects: "
        "There is a red ball 1 right in front of you 2 steps away. "
        "There is a grey key 1 1 steps in front of you and 2 steps to your right. "
        "The room has walls around you. You are facing a red ball 2 steps away. "
        "You are not carrying anything."
    )


def test_reset_text_and_actions_in_text_switch(env):
    first = env.start(env.catalogue().get("GoToRedBallGrey:seed=7")).reset()
    lines = first.split("\n")
    assert lines[0] == "Your goal: go to the red ball"
    assert lines[1].startswith("In front of you in this room, you can see several objects: There is a ")
    assert lines[1].endswith("You are not carrying anything.")
    assert "Available actions" not in first

    shown = BabyAIEnvironment(actions_in_text=True, tasks_per_level={"train": 1, "test": 1})
    episode = shown.start(shown.catalogue().get("GoToRedBallGrey:seed=7"))
    text = episode.reset()
    assert text.startswith(first)
    prefix = "Available actions: "
    last = text.split("\n")[-1]
    assert last.startswith(prefix) and json.loads(last[len(prefix) :]) == episode.valid_actions()
    assert episode.step("turn left").observation.split("\n")[-1].startswith(prefix)


def test_nothing_in_sight_and_carrying():
    episode = room(agent=(1, 1), facing=EAST)
    episode.env.carrying = Key("blue")
    episode.look()
    text = episode.step("turn left").observation  # facing the north wall
    assert text == (
        "You cannot see any objects within sight. The room has walls around you. "
        "You are facing a wall 1 steps away. You are carrying a blue key."
    )


# -- parser --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("turn", "action"),
    [
        ("go to red ball 1", "go to red ball 1"),
        ("Thought: the ball is ahead.\nAction: Go To Red Ball 1.", "go to red ball 1"),
        ("Action: turn left\nThought: then Action: move forward!", "move forward"),
        ('Thought: x\nAction:  "pickup  grey key 2"  \nmore text', "pickup grey key 2"),
        ("Action: pick up grey key 2", "pickup grey key 2"),
        ("action: `toggle`", "toggle"),
        ("Thought: my reaction: wait\nAction: drop", "drop"),
        ("Thought: nothing to do", "thought: nothing to do"),
        ("", ""),
    ],
)
def test_extract_action(turn, action):
    assert extract_action(turn) == action


# -- grammar, case by case -----------------------------------------------------------------------


def test_turns_and_move_forward():
    episode = room(agent=(2, 2), facing=EAST)
    outcome = episode.step("Thought: go.\nAction: move forward")
    assert outcome.action_valid and outcome.parsed_action == "move forward"
    assert tuple(episode.env.agent_pos) == (3, 2) and outcome.info["primitive_steps"] == 1
    episode.step("turn right")
    assert episode.env.agent_dir == SOUTH
    episode.step("turn left")
    assert episode.env.agent_dir == EAST


def test_state_key_follows_the_world_not_the_path():
    def keys(*turns: str) -> list[str]:
        episode = room(((4, 3), Key("grey")), agent=(2, 2), facing=EAST)
        return [episode.state_key()] + [(episode.step(turn), episode.state_key())[1] for turn in turns]

    left = keys(*["turn left"] * 4, "turn right", "turn left", "check available actions", "dance")
    right = keys(*["turn right"] * 4)
    assert left[4] == right[4] == left[6] == left[7] == left[8]  # every way faced: the same cells seen
    assert len({left[0], left[1], left[4], left[5]}) == 4  # another direction, or more of the room seen
    moved = keys("pickup grey key 1", "drop")
    there = keys("go to grey key 1")
    assert moved[-1] == there[-1] and moved[1] not in (moved[0], moved[2])  # the key back where it lay
    assert room(((4, 3), Box("green", Key("red")))).state_key() != room(((4, 3), Box("green"))).state_key()


def test_state_key_holds_a_sequenced_missions_progress():
    episode = BabyAIEpisode("GoToSeq", 1)  # "go to a red door and go to a purple door"
    episode.reset()
    before = episode.state_key()
    episode.env.instrs.a_done = "success"  # one door reached: the same cells and pose, half the mission done
    assert episode.state_key() != before


def test_barrier_ahead():
    episode = room(((2, 1), Ball("red")))
    outcome = episode.step("move forward")
    assert (outcome.observation, outcome.action_valid) == (BARRIER, False)
    assert episode.env.step_count == 0  # a refused action takes no primitive step
    assert "move forward" not in episode.valid_actions()


def test_unrecognized_and_unseen_objects():
    episode = room(((3, 1), Ball("red")))
    outcome = episode.step("Action: dance")
    assert (outcome.observation, outcome.action_valid, outcome.parsed_action) == (NOT_RECOGNIZED, False, "dance")
    outcome = episode.step("go to purple key 1")
    assert outcome.observation == "There is no purple key 1 in sight. Please check valid actions."
    assert episode.step("go to red ball 2").observation.startswith("There is no red ball 2 in sight.")
    assert episode.step("pickup red ball").observation == NOT_RECOGNIZED  # the number is required
    assert episode.env.step_count == 0


def test_go_to_and_reward_formula():
    episode = room(((5, 4), Ball("red")), agent=(1, 1))
    outcome = episode.step("go to red ball 1")
    steps = outcome.info["primitive_steps"]
    assert outcome.terminated and outcome.success and steps == episode.env.step_count > 1
    assert outcome.reward == pytest.approx(1 - 0.9 * steps / episode.env.max_steps)
    assert outcome.observation.endswith("\nThe task is completed.")
    assert episode.valid_actions() == [] and episode.expert_action() is None


def test_go_to_an_object_already_faced_takes_one_step():
    episode = room(((2, 1), Ball("red")))
    outcome = episode.step("go to red ball 1")
    assert outcome.success and outcome.info["primitive_steps"] == 1
    assert outcome.reward == pytest.approx(1 - 0.9 / episode.env.max_steps)


def test_pickup_drop_and_their_errors():
    episode = room(((4, 3), Key("grey")))
    outcome = episode.step("pickup grey key 1")
    assert outcome.action_valid and episode.env.carrying.type == "key"
    assert "You are carrying a grey key." in outcome.observation

    episode = room(((2, 1), Box("green")))
    assert episode.step("drop").observation == NOTHING_TO_DROP
    episode.env.carrying = Key("grey")
    episode.look()
    outcome = episode.step("pickup green box 1")
    assert outcome.observation == "You cannot pickup green box 1, as you are already carrying something."
    assert not outcome.action_valid
    assert episode.step("drop").observation == DROP_BLOCKED  # the box is in front
    episode.step("turn right")
    outcome = episode.step("drop")
    assert outcome.action_valid and episode.env.carrying is None
    assert episode.env.grid.get(1, 2).type == "key"


def test_no_path():
    # The ball is walled in on three sides and a box closes the fourth: seen, but out of reach.
    episode = room(((3, 1), Ball("red")), ((2, 1), Wall()), ((4, 1), Wall()), ((3, 2), Box("grey")), agent=(1, 3))
    outcome = episode.step("go to red ball 1")
    assert outcome.observation == "You cannot go to red ball 1, as there is no path leading to it."
    assert episode.step("pickup red ball 1").observation == (
        "You cannot pickup red ball 1, as there is no path leading to it."
    )
    assert "go to grey box 1" in episode.valid_actions()


def test_toggle_messages():
    episode = room(((2, 1), Ball("red")))
    assert episode.step("toggle").observation == NOTHING_TO_TOGGLE
    episode = room(*wall_with_door(Door("red", is_locked=True)), agent=(3, 3))
    outcome = episode.step("toggle")
    assert outcome.observation == "You cannot toggle the red locked door, as you are not carrying a red key."
    episode = room(*wall_with_door(Door("red")), agent=(3, 3))
    outcome = episode.step("toggle")
    assert outcome.action_valid and episode.env.grid.get(4, 3).is_open
    assert "There is a red open door 1 right in front of you 1 steps away." in outcome.observation
    outcome = episode.step("toggle")  # toggling an open door closes it
    assert "red closed door 1" in outcome.observation and not episode.env.grid.get(4, 3).is_open
    box = room(((2, 1), Box("green", contains=Key("red"))))
    assert box.step("toggle").action_valid and box.env.grid.get(2, 1).type == "key"  # the box opens


def test_doors_closed_open_locked():
    episode = room(*wall_with_door(Door("red")), agent=(1, 3))
    outcome = episode.step("go through red closed door 1")
    assert (
        outcome.observation == "You cannot go through red closed door 1, as it is closed. You should toggle it first."
    )
    outcome = episode.step("toggle and go through red closed door 1")
    assert outcome.action_valid and tuple(episode.env.agent_pos) == (5, 3)  # through, one step past the door
    episode.step("turn left")
    episode.step("turn left")  # facing the open door again, from the other side
    outcome = episode.step("go through red open door 1")
    assert outcome.action_valid and tuple(episode.env.agent_pos) == (3, 3)

    episode = room(*wall_with_door(Door("red", is_locked=True)), agent=(1, 3))
    assert episode.step("toggle and go through red locked door 1").observation == (
        "You cannot toggle and go through red locked door 1, as you are not carrying a key."
    )
    assert episode.step("go through red locked door 1").observation == (
        "You cannot go through red locked door 1, as it is locked. You need a red key."
    )
    episode.env.carrying = Key("blue")
    episode.look()
    assert episode.step("toggle and go through red locked door 1").observation == (
        "You cannot toggle and go through red locked door 1, as the color of the key you are carrying "
        "does not match the color of door."
    )
    episode.env.carrying = Key("red")
    episode.look()
    outcome = episode.step("toggle and go through red locked door 1")
    assert outcome.action_valid and tuple(episode.env.agent_pos) == (5, 3)
    assert episode.env.grid.get(4, 3).is_open and episode.env.carrying.color == "red"


def test_go_to_goal_without_goal():
    episode = room(((3, 1), Ball("red")))
    assert episode.step("go to goal").observation == "There is no goal in sight."


def test_check_available_actions_and_valid_actions_are_accepted():
    episode = room(((3, 1), Ball("red")), ((2, 3), Key("grey")))
    listed = episode.valid_actions()
    assert listed[:3] == ["turn left", "turn right", "move forward"] and listed[-1] == "check available actions"
    outcome = episode.step("check available actions")
    assert outcome.action_valid and outcome.observation == "You can take the following actions: " + ", ".join(listed)
    assert episode.env.step_count == 0
    for action in listed:  # every listed action is accepted, from the same state
        fresh = room(((3, 1), Ball("red")), ((2, 3), Key("grey")))
        assert fresh.step(f"Action: {action}").action_valid, action


def test_agentgym_done_quirk():
    for quirk in (False, True):
        episode = room(((3, 1), Ball("red")), agentgym_done_quirk=quirk)
        for _ in range(20):  # waste 40 of the 64 primitive steps, so that success pays less than 0.5
            episode.step("turn left")
            episode.step("turn right")
        outcome = episode.step("go to red ball 1")
        assert outcome.success and 0 < outcome.reward <= 0.5
        assert outcome.terminated is not quirk
    after = episode.step("turn left")
    assert (after.terminated, after.reward, after.action_valid) == (False, 0.0, False)


def test_mission_wording_switch():
    plain = BabyAIEpisode("GoToSeqS5R2", 1)
    reworded = BabyAIEpisode("GoToSeqS5R2", 1, agentgym_mission_wording=True)
    goal, goal_reworded = plain.reset().split("\n")[0], reworded.reset().split("\n")[0]
    assert ", then " in goal or " after you " in goal
    assert " then " not in goal_reworded and " after you " not in goal_reworded


def test_running_out_of_steps_ends_the_episode():
    episode = room(((3, 1), Ball("red")))
    outcome = None
    for _ in range(episode.env.max_steps):
        outcome = episode.step("turn left")
        if outcome.terminated:
            break
    assert outcome.terminated and not outcome.success and outcome.reward == 0
    assert outcome.info["step_limit"] and outcome.observation.endswith(
        "You have used up the steps allowed for this task."
    )


# -- task ids, tiers, splits ---------------------------------------------------------------------


def test_agentgym_ids(env):
    catalogue = env.catalogue()
    assert len(AGENTGYM_LEVELS) == 40 and AGENTGYM_LEVELS[3] == "GoToObjS6"
    task = catalogue.get("babyai-123")  # 123 = 3 * 40 + 3
    assert (task.metadata["level"], task.metadata["seed"], task.metadata["gym_id"]) == (
        "GoToObjS6",
        "3",
        "BabyAI-GoToObjS6-v1",
    )
    assert task.split == "train" and task.difficulty == "easy" and task.category == "GoToObjS6"
    assert catalogue.get("babyai-79").metadata["level"] == "BossLevelNoUnlock"
    named = catalogue.get("GoToObjS6:seed=3")
    assert named.metadata["agentgym_id"] == "babyai-123"
    first_by_index = env.start(task).reset()
    assert first_by_index == env.start(named).reset()


def test_resolver_accepts_unlisted_ids_and_rejects_bad_ones(env):
    catalogue = env.catalogue()
    task = catalogue.get("GoToRedBallGrey:seed=123456")
    assert task.split == "train" and task.difficulty == "easy"
    assert catalogue.get("GoToRedBallGrey:seed=1000123").split == "test"
    assert catalogue.get("GoToLocal:seed=5").difficulty == "unrated"  # a level outside AgentGym's 40
    for bad in ("NoSuchLevel:seed=1", "GoToRedBall:seed=-1", "GoToRedBall", "babyai-x", "babyai--1", ""):
        with pytest.raises(UnknownTask):
            catalogue.get(bad)


def test_tiers_and_listing_counts(env):
    catalogue = env.catalogue()
    counts = catalogue.counts()
    for tier, levels in DEFAULT_TIERS.items():
        for level in levels:
            assert counts[("train", tier, level)] == 50
            assert counts[("test", tier, level)] == 10
    listed_levels = {t.category for t in catalogue.list()}
    assert listed_levels == {lv for levels in DEFAULT_TIERS.values() for lv in levels}
    assert not listed_levels & set(EXCLUDED_LEVELS)
    assert len(listed_levels) == 38 and set(DEFAULT_TIERS) == {"easy", "hard"}
    assert all(t.metadata["oracle"] == "babyai_bot" for t in catalogue.list())


def test_excluded_and_failing_tasks_are_marked_not_listed(env):
    catalogue = env.catalogue()
    for level in EXCLUDED_LEVELS:
        task = catalogue.get(f"{level}:seed=0")
        assert task.metadata["oracle"] == "none" and task.metadata["oracle_problem"]
    listed = {t.id for t in catalogue.list()}
    for level, seeds in BOT_FAILURES.items():
        for seed in seeds:
            assert f"{level}:seed={seed}" not in listed
            assert catalogue.get(f"{level}:seed={seed}").metadata["oracle"] == "none"
    strict = [t for t in catalogue.list(category="OpenDoorsOrderN4Debug")]
    for task in strict[:8]:
        episode = env.start(task)
        episode.reset()
        assert not never_succeeds(episode.env.instrs)


def test_splits_are_disjoint_by_seed(env):
    train, test = env.catalogue().list(split="train"), env.catalogue().list(split="test")
    assert train and test
    train_seeds = {int(t.metadata["seed"]) for t in train}
    test_seeds = {int(t.metadata["seed"]) for t in test}
    assert max(train_seeds) < env.scheme.test_seed_start <= min(test_seeds)
    assert not {t.id for t in train} & {t.id for t in test}
    custom = BabyAIEnvironment(tasks_per_level={"train": 3, "test": 2}, test_seed_start=500)
    assert {t.metadata["seed"] for t in custom.catalogue().list(split="test")} >= {"500", "501"}


def test_configurable_tiers():
    custom = BabyAIEnvironment(tiers={"tiny": ["GoToObjS6"], "big": ["BossLevel"]}, tasks_per_level={"train": 2})
    assert {(t.split, t.difficulty, t.category) for t in custom.catalogue().list()} == {
        ("train", "tiny", "GoToObjS6"),
        ("train", "big", "BossLevel"),
    }
    with pytest.raises(ValueError):
        BabyAIEnvironment(tiers={"a": ["GoToObjS6"], "b": ["GoToObjS6"]})
    with pytest.raises(ValueError):
        BabyAIEnvironment(tiers={"a": ["NoSuchLevel"]})


# -- oracle --------------------------------------------------------------------------------------


def play_oracle(env: BabyAIEnvironment, task_id: str, max_turns: int = 200) -> tuple[bool, int]:
    episode = env.start(env.catalogue().get(task_id))
    episode.reset()
    for turn in range(1, max_turns + 1):
        action = episode.expert_action()
        assert action is not None, f"{task_id}: no advice at turn {turn}"
        assert action in episode.valid_actions(), (task_id, action)
        outcome = episode.step(f"Thought: the oracle says so.\nAction: {action}")
        assert outcome.action_valid, (task_id, action, outcome.observation)
        if outcome.terminated:
            return outcome.success and outcome.reward > 0, turn
    return False, max_turns


def sample(env: BabyAIEnvironment, split: str, tier: str) -> list[str]:
    """Listed tasks covering the tier's levels: every easy level in each split; the hard levels, which
    take longer, alternate between the splits so that each is played once."""
    levels = DEFAULT_TIERS[tier]
    if tier == "hard":
        levels = levels[split == "test" :: 2]
    picked = []
    for n, level in enumerate(levels):
        tasks = env.catalogue().list(split=split, difficulty=tier, category=level)
        picked.append(tasks[(n * 7) % len(tasks)].id)  # spread over seeds too
    return picked


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("tier", ["easy", "hard"])
def test_oracle_solves_sampled_tasks(env, split, tier):
    for task_id in sample(env, split, tier):
        solved, _ = play_oracle(env, task_id)
        assert solved, task_id


def test_oracle_advice_uses_macros(env):
    """On a multi-room level the advice is mostly macros, far fewer turns than primitive steps."""
    episode = env.start(env.catalogue().get("GoToObjMazeS7:seed=0"))
    episode.reset()
    turns = 0
    while not episode.over and turns < 200:
        episode.step(episode.expert_action())
        turns += 1
    assert episode.succeeded and turns * 2 <= episode.env.step_count


# -- determinism ---------------------------------------------------------------------------------

SAMPLE_IDS = ["babyai-0", "babyai-123", "GoToRedBallGrey:seed=7", "BossLevel:seed=1000003", "SynthLoc:seed=42"]


def test_same_task_same_first_observation(env):
    catalogue = env.catalogue()
    for task_id in SAMPLE_IDS:
        task = catalogue.get(task_id)
        assert env.start(task).reset() == env.start(task).reset()


def test_same_first_observation_in_a_fresh_process(env):
    script = (
        "import json, sys\n"
        "from gymwire.env_servers.babyai import BabyAIEnvironment\n"
        "env = BabyAIEnvironment(tasks_per_level={'train': 1, 'test': 1})\n"
        "print(json.dumps([env.start(env.catalogue().get(i)).reset() for i in sys.argv[1:]]))\n"
    )
    here = [env.start(env.catalogue().get(i)).reset() for i in SAMPLE_IDS]
    assert json_in_fresh_process(script, *SAMPLE_IDS, hash_seed="12345") == here

"""ALFWorld: the wheel's data, the rules and replies case by case, goals, the oracle on every task type
and split, ids/splits/tiers, determinism across processes, a real server's conformance, and a
cross-check of our simulator against ALFWorld's own engine (TextWorld's PDDL backend) on exported
copies of our rooms, which also exercises the real-game loader."""

from __future__ import annotations

import importlib.util
import json
import random
import re

import pytest

pytest.importorskip("gymwire.env_servers.alfworld.assets")
if importlib.util.find_spec("alfworld") is None:
    pytest.skip("the `alfworld` wheel is not installed (pip install --no-deps alfworld)", allow_module_level=True)

from gymwire.env_servers.alfworld import ALFWorldEnvironment  # noqa: E402
from gymwire.env_servers.alfworld import text as T  # noqa: E402
from gymwire.env_servers.alfworld.assets import load_tables  # noqa: E402
from gymwire.env_servers.alfworld.environment import ALFWorldEpisode  # noqa: E402
from gymwire.env_servers.alfworld.generator import generate  # noqa: E402
from gymwire.env_servers.alfworld.goals import CLEAN, COOL, HEAT, LOOK, SIMPLE, TASK_TYPES, TWO, Goal  # noqa: E402
from gymwire.env_servers.alfworld.names import number_instances  # noqa: E402
from gymwire.env_servers.alfworld.parser import extract_action  # noqa: E402
from gymwire.env_servers.alfworld.tasks import expert_plan, parse_generated_id  # noqa: E402
from gymwire.env_servers.alfworld.text import WORDINGS  # noqa: E402
from gymwire.env_servers.alfworld.world import ReceptacleSpec, Room, ThingSpec, World  # noqa: E402
from gymwire.env_servers.conformance import RULES, run_suite  # noqa: E402
from gymwire.env_servers.sdk import UnknownTask  # noqa: E402
from gymwire.env_servers.sdk.background import BackgroundServer  # noqa: E402
from tests.conftest import json_in_fresh_process  # noqa: E402

ENGINE = all(importlib.util.find_spec(m) for m in ("textworld", "fast_downward", "jericho", "tatsu"))
needs_engine = pytest.mark.skipif(not ENGINE, reason="ALFWorld's engine (textworld[pddl]) is not installed")


@pytest.fixture(scope="module")
def env() -> ALFWorldEnvironment:
    return ALFWorldEnvironment(per_scene=2)


# ----- a small hand-made room for the rules --------------------------------------------------------


def small_room() -> Room:
    tables = load_tables()
    receptacles = (
        ReceptacleSpec("cabinet 1", "Cabinet", True),
        ReceptacleSpec("countertop 1", "CounterTop", False),
        ReceptacleSpec("desk 1", "Desk", False),
        ReceptacleSpec("fridge 1", "Fridge", True),
        ReceptacleSpec("garbagecan 1", "GarbageCan", False),
        ReceptacleSpec("microwave 1", "Microwave", True),
        ReceptacleSpec("sinkbasin 1", "SinkBasin", False),
    )
    food = {"heatable": True, "coolable": True, "cleanable": True, "sliceable": True}
    things = (
        ThingSpec("apple 1", "Apple", **food),
        ThingSpec("apple 2", "Apple", **food),
        ThingSpec("book 1", "Book"),
        ThingSpec("desklamp 1", "DeskLamp", pickupable=False, toggleable=True),
        ThingSpec("knife 1", "Knife", cleanable=True),
        ThingSpec("mug 1", "Mug", heatable=True, coolable=True, cleanable=True, receptacle_object=True),
    )
    placement = (
        ("apple 1", "countertop 1"),
        ("apple 2", "fridge 1"),
        ("book 1", "desk 1"),
        ("desklamp 1", "desk 1"),
        ("knife 1", "countertop 1"),
        ("mug 1", "cabinet 1"),
    )
    return Room(0, "Kitchen", receptacles, things, placement, tables.receptacle_objects)


def episode(goal: Goal | None = None, wording: str = "agentgym") -> ALFWorldEpisode:
    goal = goal or Goal(HEAT, "Apple", "GarbageCan", text="put a hot apple in garbagecan")
    return ALFWorldEpisode(small_room(), goal, WORDINGS[wording])


def play(ep: ALFWorldEpisode, *script: tuple[str, str | None]) -> None:
    """Each (command, expected reply); None = `Nothing happens.` with action_valid False."""
    for command, expected in script:
        out = ep.step(f"Thought: next.\nAction: {command}")
        if expected is None:
            assert (out.observation, out.action_valid) == (T.NOTHING_HAPPENS, False), command
        else:
            assert (out.observation, out.action_valid) == (expected, True), command


# ----- the wheel's data -----------------------------------------------------------------------------


def test_tables_come_from_the_installed_wheel():
    t = load_tables()
    assert len(t.all_scenes()) == 120 and len(t.test_scenes) == 24
    assert "Apple" in t.receptacle_objects["Fridge"] and "Apple" not in t.receptacle_objects["Cabinet"]
    assert {"Fridge", "Cabinet", "Microwave", "Drawer", "Safe"} <= t.openable
    assert t.templates[CLEAN][0] == "put a clean {obj} in {recep}"
    assert all(t.templates[k] for k in TASK_TYPES)
    assert t.goals_valid[HEAT] == {"Kitchen"}
    assert "(:action PickupObject" in t.domain_pddl


def test_every_reply_we_write_is_in_the_wheel_grammar():
    grammar = load_tables().grammar_twl2.replace("\\n", "\n")
    fixed = [
        T.MIDDLE_OF_ROOM,
        "You are facing the {r}",
        "Next to it, you see {listing}.",
        T.RECEPTACLE_OPEN,
        T.RECEPTACLE_CLOSED,
        T.RECEPTACLE_SURFACE,
        T.OPEN,
        T.CLOSE,
        T.TAKE,
        T.CARRYING,
        T.CARRYING_NOTHING,
        T.HEAT,
        T.COOL,
        T.CLEAN,
        T.SLICE,
        T.TURN_ON,
        T.PUT_04,
        T.PUT_COMMAND_04,
        T.ARRIVE,
        T.EXAMINE_RECEPTACLE_OBJECT,
        T.EXAMINE_LAMP_ON,
        T.EXAMINE_LAMP_OFF,
        T.EXAMINE_SLICED,
        T.EXAMINE_PLAIN,
        T.HELP,
        T.TASK.replace("{goal}", "UNKNOWN GOAL"),
    ]
    fixed += [sentence for _, sentence in T.EXAMINE_STATES]
    assert T.FACING == "You are facing the {r}. Next to it, you see {listing}."  # `#look-variations#. Next ...`
    for sentence in fixed:
        pattern = re.escape(sentence.strip()).replace(r"\{listing\}", r"(?:\[\{.*?\}\]|#[a-z_]+#)")
        for placeholder, attr in (("o", "o"), ("r", "r"), ("co", "co"), ("ko", "ko")):
            either = r"(?:\{" + attr + r"(?:\.name)?\}|\[\{" + attr + r"\.name \|)"  # {r.name} or [{r.name | ...}]
            pattern = pattern.replace(re.escape("{" + placeholder + "}"), either)
        assert re.search(pattern, grammar), sentence
    # the 0.3 forms are exactly what 0.4's patch script rewrites
    assert T.PUT_03 == "You put the {o} in/on the {r}." and T.PUT_COMMAND_03 == "put {o} in/on {r}"


def test_instances_are_numbered_like_alfworld_demangler():
    names = number_instances(
        [
            "Cabinet|+00.68|+00.50|-02.20",
            "Cabinet|-01.18|+00.50|-02.20",
            "Sink|-00.60|+00.93|-03.39|SinkBasin",
            "Mug|+01.00|+00.90|-00.10",
        ]
    )
    # the planner's sorted ids: `_minus_` < `_plus_`, and the first id gets the highest number
    assert names["Cabinet|-01.18|+00.50|-02.20"] == "cabinet 2"
    assert names["Cabinet|+00.68|+00.50|-02.20"] == "cabinet 1"
    assert names["Sink|-00.60|+00.93|-03.39|SinkBasin"] == "sinkbasin 1"
    assert names["Mug|+01.00|+00.90|-00.10"] == "mug 1"


# ----- rules and replies ----------------------------------------------------------------------------


def test_first_observation_in_both_wordings():
    room = (
        "You are in the middle of a room. Looking quickly around you, you see a cabinet 1, a countertop 1, "
        "a desk 1, a fridge 1, a garbagecan 1, a microwave 1, and a sinkbasin 1."
    )
    assert episode().reset() == room + "\nYour task is to: put a hot apple in garbagecan."
    assert episode(wording="0.4").reset() == room + "\n\nYour task is to: put a hot apple in garbagecan."


def test_moving_opening_taking_and_placing():
    ep = episode()
    play(
        ep,
        ("take apple 1 from countertop 1", None),  # not there yet
        ("go to countertop 1", "On the countertop 1, you see a apple 1, and a knife 1."),
        ("go to countertop 1", None),  # already there
        ("take apple 1 from countertop 1", "You pick up the apple 1 from the countertop 1."),
        ("take knife 1 from countertop 1", None),  # hands full
        ("inventory", "You are carrying: a apple 1."),
        ("go to cabinet 1", "The cabinet 1 is closed."),
        ("take mug 1 from cabinet 1", None),
        ("open cabinet 1", "You open the cabinet 1. The cabinet 1 is open. In it, you see a mug 1."),
        ("open cabinet 1", None),
        ("put apple 1 in/on cabinet 1", None),  # a cabinet cannot hold an apple (the wheel's table)
        ("examine cabinet 1", "The cabinet 1 is open. In it, you see a mug 1."),
        ("close cabinet 1", "You close the cabinet 1."),
        ("look", "You are facing the cabinet 1. Next to it, you see nothing."),
        ("go to garbagecan 1", "On the garbagecan 1, you see nothing."),
        ("put apple 1 in garbagecan 1", "You put the apple 1 in/on the garbagecan 1."),
        ("inventory", "You are not carrying anything."),
        ("go to fridge 1", "The fridge 1 is closed."),
        ("open fridge 1", "You open the fridge 1. The fridge 1 is open. In it, you see a apple 2."),
    )
    assert not ep.won  # the apple in the garbage can is not hot


def test_heat_cool_clean_need_their_appliance_and_change_the_object():
    ep = episode()
    play(
        ep,
        ("go to countertop 1", "On the countertop 1, you see a apple 1, and a knife 1."),
        ("take apple 1 from countertop 1", "You pick up the apple 1 from the countertop 1."),
        ("heat apple 1 with countertop 1", None),
        ("examine apple 1", "There's nothing special about apple 1."),
        ("go to fridge 1", "The fridge 1 is closed."),
        ("heat apple 1 with fridge 1", None),
        ("cool apple 1 with fridge 1", "You cool the apple 1 using the fridge 1."),  # the door may stay shut
        ("examine apple 1", "This is a cold apple 1."),
        ("go to microwave 1", "The microwave 1 is closed."),
        ("clean apple 1 with microwave 1", None),
        ("heat apple 1 with microwave 1", "You heat the apple 1 using the microwave 1."),
        ("examine apple 1", "This is a hot apple 1."),  # heating ends the cold
        ("go to sinkbasin 1", "On the sinkbasin 1, you see nothing."),
        ("clean apple 1 with sinkbasin 1", "You clean the apple 1 using the sinkbasin 1."),
        ("examine apple 1", "This is a hot and clean apple 1."),
        ("go to garbagecan 1", "On the garbagecan 1, you see nothing."),
    )
    out = ep.step("Action: put apple 1 in/on garbagecan 1")
    assert out.observation == "You put the apple 1 in/on the garbagecan 1."
    assert (out.reward, out.terminated, out.success) == (1.0, True, True)


def test_lamps_slicing_and_examining():
    ep = episode()
    play(
        ep,
        ("go to desk 1", "On the desk 1, you see a book 1, and a desklamp 1."),
        ("take desklamp 1 from desk 1", None),  # lamps are switched on where they stand
        ("use book 1", None),
        ("use desklamp 1", "You turn on the desklamp 1."),
        ("use desklamp 1", "You turn on the desklamp 1."),  # ALFWorld says "on" every time
        ("go to cabinet 1", "The cabinet 1 is closed."),
        ("open cabinet 1", "You open the cabinet 1. The cabinet 1 is open. In it, you see a mug 1."),
        ("take mug 1 from cabinet 1", "You pick up the mug 1 from the cabinet 1."),
        ("examine mug 1", "This is a normal mug 1. In it, you see nothing."),
        ("put mug 1 in/on cabinet 1", "You put the mug 1 in/on the cabinet 1."),
        ("go to countertop 1", "On the countertop 1, you see a apple 1, and a knife 1."),
        ("slice apple 1 with knife 1", None),  # the knife must be in hand
        ("take knife 1 from countertop 1", "You pick up the knife 1 from the countertop 1."),
        ("slice apple 1 with knife 1", "You sliced the apple 1 with the knife 1."),
        ("examine apple 1", None),
    )  # only held objects can be examined (as ALFWorld's engine grounds it)
    assert ep.world.has_state("apple 1", "sliced")


def test_bad_actions_are_nothing_happens_and_change_nothing():
    ep = episode()
    ep.reset()
    before = ep.valid_actions()
    for turn in [
        "",
        "dance",
        "Action: go to the moon",
        "go to cabinet",
        "take apple 1",
        "put apple 1 in/on desk 1",
        "open countertop 1",
        "Action: heat apple 1 with microwave 1",
        "x" * 5000,
    ]:
        out = ep.step(turn)
        assert (out.observation, out.action_valid, out.reward) == ("Nothing happens.", False, 0.0)
    assert ep.valid_actions() == before and ep.world.at is None


def test_parser_and_both_placing_forms():
    assert extract_action("Thought: hmm.\nAction: Go To  Cabinet 1.") == "go to cabinet 1"
    assert extract_action("ACTION: `open fridge 1`\nmore text") == "open fridge 1"
    cases = (
        ("agentgym", "put apple 1 in/on countertop 1", "You put the apple 1 in/on the countertop 1."),
        ("0.4", "move apple 1 to countertop 1", "You move the apple 1 to the countertop 1."),
    )
    for wording, form, reply in cases:
        for said in ("put apple 1 in/on countertop 1", "move apple 1 to countertop 1", "put apple 1 on countertop 1"):
            ep = episode(wording=wording)
            ep.step("go to countertop 1")
            ep.step("take apple 1 from countertop 1")
            assert form in ep.valid_actions()
            out = ep.step(f"Action: {said}")
            assert (out.observation, out.parsed_action) == (reply, form)


def test_wording_04_arrives_and_has_help():
    ep = episode(wording="0.4")
    out = ep.step("go to countertop 1")
    assert out.observation == "You arrive at countertop 1. On the countertop 1, you see a apple 1, and a knife 1."
    assert "help" in ep.valid_actions() and ep.step("help").observation.startswith("Available commands:\n")
    assert "help" not in episode().valid_actions()
    with pytest.raises(ValueError, match="wording"):
        ALFWorldEnvironment(wording="0.2", per_scene=0)


def test_look_in_the_middle_lists_nothing_like_alfworld():
    assert episode().step("look").observation == (
        "You are in the middle of a room. Looking quickly around you, you see nothing."
    )


def test_valid_actions_follow_the_state():
    ep = episode()
    assert ep.valid_actions() == sorted(ep.valid_actions())
    assert "go to cabinet 1" in ep.valid_actions() and "inventory" in ep.valid_actions()
    ep.step("go to countertop 1")
    acts = set(ep.valid_actions())
    assert {"take apple 1 from countertop 1", "take knife 1 from countertop 1", "examine countertop 1"} <= acts
    assert "go to countertop 1" not in acts
    ep.step("take knife 1 from countertop 1")
    acts = set(ep.valid_actions())
    assert {"slice apple 1 with knife 1", "examine knife 1", "put knife 1 in/on countertop 1"} <= acts
    assert not any(a.startswith("take ") for a in acts)


def test_state_key_follows_the_world_not_the_path():
    def keys(*commands: str) -> list[str]:
        ep = episode()
        ep.reset()
        return [ep.state_key()] + [(ep.step(f"Action: {c}"), ep.state_key())[1] for c in commands]

    there = keys("go to countertop 1")
    detour = keys("go to fridge 1", "open fridge 1", "close fridge 1", "go to countertop 1", "look", "dance")
    assert detour[1] == detour[3] and detour[-1] == detour[-2] == detour[-3] == there[-1]
    assert len({there[0], there[1], detour[1], detour[2]}) == 4
    back = keys("go to countertop 1", "take apple 1 from countertop 1", "put apple 1 in/on countertop 1")
    assert back[-1] == there[-1] != back[2]  # put back where it was: the same world
    heated = keys(
        "go to countertop 1", "take apple 1 from countertop 1", "go to microwave 1", "heat apple 1 with microwave 1"
    )
    assert heated[-1] != heated[-2]  # a hot apple is another state


# ----- goals -----------------------------------------------------------------------------------------


def test_goal_conditions():
    w = World(small_room(), WORDINGS["agentgym"])
    two = Goal(TWO, "Apple", "CounterTop")
    simple = Goal(SIMPLE, "Book", "Desk")
    assert simple.satisfied(w) is True  # generated tasks never start like this (see the generator test)
    assert not two.satisfied(w)
    for cmd in ("go to fridge 1", "open fridge 1", "take apple 2 from fridge 1", "go to countertop 1"):
        w.act(cmd)
    w.act("put apple 2 in/on countertop 1")
    assert two.satisfied(w)  # both apples in the same countertop
    look = Goal(LOOK, "Apple", toggle="DeskLamp")
    for cmd in ("take apple 2 from countertop 1", "go to desk 1"):
        w.act(cmd)
    assert not look.satisfied(w)
    w.act("use desklamp 1")
    assert look.satisfied(w)
    w.act("go to countertop 1")
    assert not look.satisfied(w)  # the lamp must be where the agent stands
    cool = Goal(COOL, "Apple", "CounterTop")
    assert not cool.satisfied(w)


# ----- generated tasks: ids, splits, tiers, determinism ------------------------------------------------


def test_catalogue_shape_and_disjoint_splits(env):
    cat = env.catalogue()
    counts = cat.counts()
    assert {c for (_, _, c) in counts} == set(TASK_TYPES)
    assert {s for (s, _, _) in counts} == {"train", "test"}
    for split in ("train", "test"):
        for task_type in TASK_TYPES:
            assert cat.list(split, category=task_type)
    assert {t.category for t in cat.list(difficulty="easy")} == {SIMPLE}
    assert {t.category for t in cat.list(difficulty="hard")} == set(TASK_TYPES) - {SIMPLE}
    train_scenes = {t.metadata["scene"] for t in cat.list("train")}
    test_scenes = {t.metadata["scene"] for t in cat.list("test")}
    assert not train_scenes & test_scenes
    assert test_scenes == {f"FloorPlan{n}" for n in load_tables().test_scenes}
    assert all(int(t.metadata["expert_turns"]) > 0 for t in cat.list())


def test_ids_resolve_and_reject(env):
    cat = env.catalogue()
    task = cat.get("gen:pick_heat_then_place:floorplan12:77")  # an alias and an unlisted seed
    assert task.id == "gen:pick_heat_then_place_in_recep:FloorPlan12:77" and task.split == "train"
    assert parse_generated_id(task.id).seed == 77
    assert cat.get("gen:pick_and_place_simple:FloorPlan3:0").split == "test"
    for bad in (
        "gen:pick_heat_then_place_in_recep:FloorPlan301:0",  # heat only in kitchens
        "gen:look_at_obj_in_light:FloorPlan1:0",
        "gen:unknown_type:FloorPlan1:0",
        "gen:pick_and_place_simple:FloorPlan99:0",
        "pick_and_place_simple",
        "",
    ):
        with pytest.raises(UnknownTask):
            cat.get(bad)


def test_tiers_are_a_parameter():
    env = ALFWorldEnvironment(
        per_scene=1,
        tiers={
            "easy": [SIMPLE, "pick_two_obj_and_place"],
            "medium": ["pick_clean_then_place", LOOK],
            "hard": [HEAT, COOL],
        },
    )
    assert {t.category for t in env.catalogue().list(difficulty="medium")} == {CLEAN, LOOK}
    with pytest.raises(ValueError, match="without a tier"):
        ALFWorldEnvironment(per_scene=0, tiers={"easy": [SIMPLE]})
    with pytest.raises(ValueError, match="unknown task type"):
        ALFWorldEnvironment(per_scene=0, tiers={"easy": ["nope"]})


def test_generated_goals_never_hold_at_the_start_and_fit_the_room():
    tables = load_tables()
    for task_type in TASK_TYPES:
        for scene in load_tables().all_scenes()[::7]:
            try:
                made = generate(task_type, scene, 3)
            except ValueError:
                continue
            world = World(made.room, WORDINGS["agentgym"])
            assert not made.goal.satisfied(world)
            assert made.room.room_type in tables.goals_valid[task_type]
            assert made.goal.text.split(" ")[0] in ("put", "clean", "heat", "cool", "find", "look", "examine")
            if task_type == TWO:
                assert len(world.of_kind(made.goal.obj)) >= 2


DETERMINISM_IDS = [
    "gen:pick_cool_then_place_in_recep:FloorPlan7:0",
    "gen:look_at_obj_in_light:FloorPlan301:5",
    "gen:pick_two_obj_and_place:FloorPlan401:12",
]
DETERMINISM_SCRIPT = """
import json, sys
from gymwire.env_servers.alfworld import ALFWorldEnvironment
env = ALFWorldEnvironment(per_scene=0)
out = {}
for task_id in json.loads(sys.argv[1]):
    ep = env.start(env.catalogue().get(task_id))
    out[task_id] = [ep.reset(), ep.valid_actions(), ep.expert_action()]
print(json.dumps(out))
"""


def test_same_first_observation_across_processes():
    runs = [
        json_in_fresh_process(DETERMINISM_SCRIPT, json.dumps(DETERMINISM_IDS), hash_seed=hash_seed)
        for hash_seed in ("0", "12345")
    ]
    env = ALFWorldEnvironment(per_scene=0)
    here = {}
    for task_id in DETERMINISM_IDS:
        ep = env.start(env.catalogue().get(task_id))
        here[task_id] = [ep.reset(), ep.valid_actions(), ep.expert_action()]
    assert runs[0] == runs[1] == here
    assert len({v[0] for v in here.values()}) == len(DETERMINISM_IDS)


# ----- the oracle --------------------------------------------------------------------------------------


def run_expert(env: ALFWorldEnvironment, task, limit: int = 100) -> tuple[bool, int]:
    ep = env.start(task)
    ep.reset()
    for turn_count in range(1, limit + 1):
        turn = ep.expert_action()
        assert turn is not None and turn.startswith("Thought: ") and "\nAction: " in turn
        out = ep.step(turn)
        assert out.action_valid, turn
        if out.terminated:
            return out.success and out.reward == 1.0, turn_count
    return False, limit


def test_oracle_solves_every_task_type_in_every_split(env):
    cat = env.catalogue()
    for split in ("train", "test"):
        for task_type in TASK_TYPES:
            tasks = cat.list(split, category=task_type)
            for task in random.Random(f"{split}{task_type}").sample(list(tasks), min(4, len(tasks))):
                solved, turns = run_expert(env, task)
                assert solved, task.id
                assert turns == int(task.metadata["expert_turns"])
                assert env.start(task).expert_action() is not None


def test_oracle_plans_reach_the_goal_on_every_listed_room():
    env = ALFWorldEnvironment(per_scene=1)
    from gymwire.env_servers.alfworld.generator import cached

    for task in env.catalogue().list():
        gen = parse_generated_id(task.id)
        made = cached(gen.task_type, gen.scene, gen.seed)
        world = World(made.room, WORDINGS["agentgym"])
        for action in expert_plan(made):
            assert world.act(action)[1], (task.id, action)
        assert made.goal.satisfied(world), task.id


def test_oracle_takes_over_after_random_play(env):
    rng = random.Random(4)
    tasks = list(env.catalogue().list())
    for task in rng.sample(tasks, 30):
        ep = env.start(task)
        ep.reset()
        for _ in range(15):  # random admissible actions (also picking up wrong objects)
            out = ep.step(rng.choice(ep.valid_actions()))
            if out.terminated:
                break
        else:
            for _ in range(100):
                out = ep.step(ep.expert_action())
                if out.terminated:
                    break
        assert ep.won, task.id


# ----- a real server ---------------------------------------------------------------------------------


def test_description():
    d = ALFWorldEnvironment(per_scene=0).describe()
    assert (d.name, d.provides_valid_actions, d.provides_expert, d.default_max_turns, d.max_turns_limit) == (
        "alfworld",
        True,
        True,
        30,
        100,
    )
    assert "put <object> in/on <receptacle>" in d.instruction and "Nothing happens." in d.instruction


def test_conformance_on_a_real_server():
    with BackgroundServer(lambda: ALFWorldEnvironment(per_scene=1)) as server:
        results = run_suite(server.address)
    assert len(results) == len(RULES)
    failed = [(r.name, r.detail) for r in results if r.status == "fail"]
    assert not failed


# ----- ALFWorld's own engine: cross-check and the real-game loader --------------------------------------


def test_real_games_need_the_engine_and_say_which_package(monkeypatch, tmp_path):
    from gymwire.env_servers.alfworld import real_data

    real_find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("textworld", "fast_downward") else real_find(name, *a),
    )
    with pytest.raises(RuntimeError, match="textworld, fast_downward_textworld"):
        real_data.require_engine()


def test_placing_commands_take_either_alfworld_wording():
    """Games of ALFWorld 0.3 admit `put X in/on Y`, of 0.4 `move X to Y`: a placing command is sent in
    the wording the game admits, and the expert reads its own."""
    from gymwire.env_servers.alfworld.real_data import _as_03, _as_04

    for command in ("put mug 2 in/on cabinet 3", "put mug 2 in cabinet 3", "move mug 2 to cabinet 3"):
        assert _as_03(command) == "put mug 2 in/on cabinet 3" and _as_04(command) == "move mug 2 to cabinet 3"
    assert _as_03("take mug 2 from cabinet 3") == _as_04("take mug 2 from cabinet 3") == "take mug 2 from cabinet 3"


CROSS_CHECK = [
    ("pick_clean_then_place_in_recep", 2, 0, "train", "0.3"),
    ("look_at_obj_in_light", 301, 0, "valid_unseen", "0.3"),
    ("pick_two_obj_and_place", 401, 0, "valid_seen", "0.4"),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Three of our rooms written as ALFWorld game folders (json_2.1.1 layout), plus decoys the loader skips."""
    from gymwire.env_servers.alfworld.pddl_export import export_game

    root = tmp_path_factory.mktemp("alfworld_data")
    games = {}
    for task_type, scene, seed, split, version in CROSS_CHECK:
        made = generate(task_type, scene, seed)
        g = made.goal
        task_id = f"{split}/{task_type}-{g.obj}-None-{g.recep or g.toggle}-{scene}/trial_T2024_{seed}"
        export_game(made, root / "json_2.1.1" / task_id, version=version)
        games[task_id] = (made, version)
    decoy = root / "json_2.1.1" / "train" / "pick_and_place_simple-Mug-None-Desk-301" / "trial_unsolvable"
    export_game(generate(SIMPLE, 301, 0), decoy)
    game_file = decoy / "game.tw-pddl"
    game_file.write_text(game_file.read_text().replace('"solvable": true', '"solvable": false'))
    movable = root / "json_2.1.1" / "train" / "pick_and_place_with_movable_recep-X-Y-Z-302" / "t"
    export_game(generate(SIMPLE, 302, 0), movable)
    return root, games


@needs_engine
def test_our_simulator_matches_alfworld_engine(exported, monkeypatch):
    """Same room in both engines: same admissible commands and same reply, step by step."""
    root, games = exported
    monkeypatch.setenv("ALFWORLD_DATA", str(root))  # importing alfworld creates this folder otherwise in ~/.cache
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    from textworld.envs.wrappers import GenericEnvironment

    infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=True)
    engine = AlfredInfos(AlfredDemangler(shuffle=False)(GenericEnvironment(infos)))
    for (task_id, (made, version)), rseed in zip(games.items(), range(3), strict=True):
        engine.load(str(root / "json_2.1.1" / task_id / "game.tw-pddl"))
        state = engine.reset()
        ep = ALFWorldEpisode(made.room, made.goal, WORDINGS["agentgym" if version == "0.3" else "0.4"])
        assert state["feedback"].split("\n\n")[1] == ep.world.describe_room()
        rng = random.Random(rseed)
        for _ in range(40):
            assert state["admissible_commands"] == ep.valid_actions()
            expert = ep.expert_action()
            choices = state["admissible_commands"] + ["look", "go to nowhere 1"]
            command = rng.choice(choices) if expert is None or rng.random() < 0.5 else extract_action(expert)
            state, _, done = engine.step(command)
            ours = ep.step(command)
            theirs = state["feedback"]
            if version == "0.3":  # AgentGym's post-processing, which the agentgym wording reproduces
                theirs = re.sub(r"^You arrive at loc \d+\. ", "", theirs)
            assert ours.observation == theirs, command
            assert ours.terminated == bool(state["won"]) == done
            if done:
                break


@needs_engine
def test_state_keys_agree_with_alfworld_engine(exported, monkeypatch):
    """On random walks, two turns share a state key on ALFWorld's engine exactly when they do on ours."""
    root, games = exported
    monkeypatch.setenv("ALFWORLD_DATA", str(root))
    env = ALFWorldEnvironment(data=root)
    for seed, (task_id, (made, _)) in enumerate(games.items()):
        real = env.start(env.catalogue().get(task_id))
        ours = ALFWorldEpisode(made.room, made.goal, WORDINGS["agentgym"])
        real.reset(), ours.reset()
        rng = random.Random(seed)
        pairs = [(real.state_key(), ours.state_key())]
        for _ in range(60):
            command = rng.choice([*ours.valid_actions(), "look", "inventory", "dance"])
            real.step(command), ours.step(command)
            pairs.append((real.state_key(), ours.state_key()))
            if ours.won:
                break
        assert len({theirs for theirs, _ in pairs}) == len({mine for _, mine in pairs}) == len(set(pairs)), task_id
        assert len(set(pairs)) < len(pairs) - 5, task_id  # the walk came back to states it had been in
    env.close()


@needs_engine
def test_real_games_are_served_with_original_ids_and_expert(exported, monkeypatch):
    root, games = exported
    monkeypatch.setenv("ALFWORLD_DATA", str(root))
    env = ALFWorldEnvironment(data=root)  # finds json_2.1.1 under ALFWORLD_DATA
    cat = env.catalogue()
    assert {t.id for t in cat.list()} == set(games)  # the unsolvable and the movable-receptacle games are skipped
    assert {t.split for t in cat.list()} == {"train", "valid_seen", "valid_unseen"}
    for task_id, (made, version) in games.items():
        task = cat.get(task_id)
        assert task.category == made.goal.task_type
        ep = env.start(task)
        ours = ALFWorldEpisode(made.room, made.goal, WORDINGS["agentgym"])
        assert ep.reset() == ours.reset()  # AgentGym's processing of the original text = our generated text
        for _ in range(80):
            turn = ep.expert_action()  # ALFWorld's own hand-coded expert
            assert turn is not None
            out = ep.step(turn)
            if version == "0.3":
                assert out.observation == ours.step(turn).observation
            if out.terminated:
                break
        assert ep.won and out.reward == 1.0, task_id
    with pytest.raises(UnknownTask):
        cat.get("train/nothing/here")
    env.close()

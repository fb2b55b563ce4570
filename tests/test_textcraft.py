"""TextCraft: real recipe data, the grammar and every reply, the oracle, task ids, splits, determinism."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from gymwire.env_servers.sdk import Environment, StepOutcome, Task, UnknownTask
from gymwire.env_servers.textcraft import TextCraftEnvironment
from gymwire.env_servers.textcraft.generator import GenSpec, generate
from gymwire.env_servers.textcraft.oracle import plan
from gymwire.env_servers.textcraft.world import extract_action
from tests.conftest import json_in_fresh_process


@pytest.fixture(scope="module")
def env() -> TextCraftEnvironment:
    return TextCraftEnvironment()


def real_tasks(env: TextCraftEnvironment) -> list[Task]:
    return [t for t in env.catalogue().list() if t.metadata["source"] == "minecraft"]


def play(env: Environment, task_id: str, turns: list[str]) -> list[StepOutcome]:
    episode = env.start(env.catalogue().get(task_id))
    episode.reset()
    return [episode.step(turn) for turn in turns]


def run_expert(env: Environment, task: Task, limit: int = 200) -> tuple[StepOutcome, int]:
    episode = env.start(task)
    episode.reset()
    for turn in range(1, limit + 1):
        action = episode.expert_action()
        assert action is not None, f"expert gave up on {task.id}"
        outcome = episode.step(action)
        assert outcome.action_valid, f"{task.id}: expert action {action!r} failed: {outcome.observation}"
        if outcome.terminated:
            return outcome, turn
    raise AssertionError(f"expert did not finish {task.id} in {limit} turns")


# --- real recipes ---------------------------------------------------------------------------------


def test_real_goals_and_depths_match_the_original(env: TextCraftEnvironment) -> None:
    book = env.book
    assert len(book.goals()) == 544
    assert Counter(book.depth(g) for g in book.goals()) == {1: 125, 2: 291, 3: 117, 4: 11}
    # the cycles broken with the files in sorted order
    assert sorted(r.source for r in book.skipped) == ["gold_nugget.json", "honey_bottle.json", "iron_nugget.json"]


def test_recipe_groups_become_tags(env: TextCraftEnvironment) -> None:
    book = env.book
    assert book.is_tag("minecraft:planks")
    assert "minecraft:oak_planks" in book.members("minecraft:planks")
    assert len(book.members("minecraft:planks")) == 8
    # a tag that no craftable item belongs to is a plain base item
    assert not book.is_tag("minecraft:oak_logs") and book.is_base("minecraft:oak_logs")
    assert book.depth("minecraft:crafting_table") == 2  # logs -> planks -> table


def test_user_recipe_folder_with_cycle_and_tag(tmp_path: Path) -> None:
    recipes = {
        # read in sorted order: a_widget is accepted first, so z_gear's recipe from a_widget is a cycle
        "a_widget.json": {
            "type": "minecraft:crafting_shaped",
            "pattern": ["##", "#X"],
            "key": {"#": {"item": "minecraft:gear"}, "X": {"tag": "minecraft:cogs"}},
            "result": {"item": "minecraft:widget", "count": 2},
        },
        "b_brass_cog.json": {
            "type": "minecraft:crafting_shapeless",
            "group": "cogs",
            "ingredients": [{"item": "minecraft:brass"}, {"item": "minecraft:brass"}],
            "result": {"item": "minecraft:brass_cog"},
        },
        "c_smelt.json": {
            "type": "minecraft:smelting",
            "ingredient": {"item": "minecraft:ore"},
            "result": "minecraft:brass",
        },
        "z_gear.json": {
            "type": "minecraft:crafting_shapeless",
            "ingredients": [{"item": "minecraft:widget"}],
            "result": {"item": "minecraft:gear"},
        },
    }
    (tmp_path / "recipes").mkdir()
    for name, data in recipes.items():
        (tmp_path / "recipes" / name).write_text(json.dumps(data))
    env = TextCraftEnvironment(tmp_path, generated_per_depth=0)
    assert env.book.goals() == ["minecraft:widget", "minecraft:brass_cog"]
    assert [r.source for r in env.book.skipped] == ["z_gear.json"]
    assert {t.id for t in env.catalogue().list()} == {"goal:widget", "goal:brass_cog"}
    replies = play(
        env,
        "goal:widget",
        ["get 2 brass", "craft 1 brass cog using 2 brass", "get 3 gear", "craft 1 widget using 3 gear, 1 brass cog"],
    )
    assert [r.observation for r in replies][-1] == "Crafted 2 minecraft:widget"
    assert replies[-1].success and replies[-1].reward == 1.0


def test_missing_recipe_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        TextCraftEnvironment(tmp_path / "nowhere")


# --- observation ----------------------------------------------------------------------------------


def test_first_observation_layout(env: TextCraftEnvironment) -> None:
    text = env.start(env.catalogue().get("goal:blue_dye")).reset()
    head, _, goal = text.partition("\n\n")
    lines = head.splitlines()
    assert lines[0] == "Crafting commands:"
    assert goal == "Goal: craft blue dye."
    assert "craft 1 blue dye using 1 lapis lazuli" in lines
    assert "craft 1 blue dye using 1 cornflower" in lines
    assert all(line.startswith("craft ") and " using " in line for line in lines[1:])
    # the goal's tree has 2 recipes; distractors (at most 10) consume the tree's inputs
    assert 3 <= len(lines) - 1 <= 2 + 10


def test_tag_inputs_bring_their_members_recipes(env: TextCraftEnvironment) -> None:
    text = env.start(env.catalogue().get("goal:crafting_table")).reset()
    assert "craft 1 crafting table using 4 planks" in text
    assert "craft 4 oak planks using 1 oak logs" in text
    assert "craft 4 crimson planks using 1 crimson stems" in text


# --- actions and replies, case by case ------------------------------------------------------------


def test_get_base_item(env: TextCraftEnvironment) -> None:
    (out,) = play(env, "goal:blue_dye", ["get 1 lapis lazuli"])
    assert (out.observation, out.action_valid, out.parsed_action, out.reward) == (
        "Got 1 lapis lazuli",
        True,
        "get 1 lapis lazuli",
        0.0,
    )


def test_get_any_amount(env: TextCraftEnvironment) -> None:
    outs = play(env, "goal:blue_dye", ["get 64 lapis lazuli", "inventory"])
    assert [o.observation for o in outs] == ["Got 64 lapis lazuli", "Inventory: [lapis lazuli] (64) "]


@pytest.mark.parametrize(
    ("action", "reply"),
    [
        ("get 1 blue dye", "Could not find blue dye"),  # craftable: must be crafted
        ("get 1 planks", "Could not find planks"),  # a tag
        ("get 1 unobtainium", "Could not find unobtainium"),  # unknown
    ],
)
def test_get_refusals(env: TextCraftEnvironment, action: str, reply: str) -> None:
    (out,) = play(env, "goal:blue_dye", [action])
    assert out.observation == reply and not out.action_valid


def test_craft_goal_ends_the_episode(env: TextCraftEnvironment) -> None:
    outs = play(env, "goal:blue_dye", ["get 1 lapis lazuli", "craft 1 blue dye using 1 lapis lazuli", "inventory"])
    crafted = outs[1]
    assert crafted.observation == "Crafted 1 minecraft:blue_dye"
    assert (crafted.reward, crafted.terminated, crafted.success, crafted.action_valid) == (1.0, True, True, True)
    assert outs[2].observation == "Inventory: [blue dye] (1) "


def test_craft_of_another_item_gives_no_reward(env: TextCraftEnvironment) -> None:
    outs = play(env, "goal:light_blue_dye", ["get 1 lapis lazuli", "craft 1 blue dye using 1 lapis lazuli"])
    assert outs[1].observation == "Crafted 1 minecraft:blue_dye"
    assert (outs[1].reward, outs[1].terminated, outs[1].success) == (0.0, False, False)


def test_craft_without_items(env: TextCraftEnvironment) -> None:
    (out,) = play(env, "goal:light_blue_dye", ["craft 1 light blue dye using 1 blue dye, 1 white dye"])
    assert out.observation == "Could not find enough items to craft minecraft:light_blue_dye"
    assert not out.action_valid


def test_craft_counts_must_match_the_recipe(env: TextCraftEnvironment) -> None:
    outs = play(env, "goal:blue_dye", ["get 2 lapis lazuli", "craft 1 blue dye using 2 lapis lazuli"])
    assert outs[1].observation == "Could not find a valid recipe for minecraft:blue_dye"
    assert not outs[1].action_valid


def test_craft_output_count_typed_is_ignored(env: TextCraftEnvironment) -> None:
    outs = play(env, "goal:crafting_table", ["get 1 oak logs", "craft 7 oak planks using 1 oak logs", "inventory"])
    assert outs[1].observation == "Crafted 4 minecraft:oak_planks"
    assert outs[2].observation == "Inventory: [oak planks] (4) "


def test_tag_input_takes_a_member_not_the_tag_name(env: TextCraftEnvironment) -> None:
    outs = play(
        env,
        "goal:crafting_table",
        [
            "get 1 birch logs",
            "craft 4 birch planks using 1 birch logs",
            "craft 1 crafting table using 4 planks",
            "craft 1 crafting table using 4 birch planks",
        ],
    )
    assert outs[2].observation == "Could not find enough items to craft minecraft:crafting_table"
    assert outs[3].observation == "Crafted 1 minecraft:crafting_table" and outs[3].success


def test_wrong_item_format(env: TextCraftEnvironment) -> None:
    (out,) = play(env, "goal:blue_dye", ["craft 1 blue dye using lapis lazuli"])
    assert out.observation == "Wrong item format: lapis lazuli" and not out.action_valid


def test_inventory_empty(env: TextCraftEnvironment) -> None:
    (out,) = play(env, "goal:blue_dye", ["inventory"])
    assert out.observation == "Inventory: You are not carrying anything." and out.action_valid


def test_inventory_lists_items_in_order(env: TextCraftEnvironment) -> None:
    outs = play(env, "goal:blue_dye", ["get 2 lapis lazuli", "get 1 cornflower", "inventory"])
    assert outs[-1].observation == "Inventory: [lapis lazuli] (2) [cornflower] (1) "


def test_crafting_consumes_inputs(env: TextCraftEnvironment) -> None:
    outs = play(env, "goal:blue_dye", ["get 1 cornflower", "get 1 lapis lazuli", "craft 1 blue dye using 1 cornflower"])
    assert outs[-1].success
    episode = env.start(env.catalogue().get("goal:light_blue_dye"))
    episode.step("get 1 lapis lazuli")
    episode.step("craft 1 blue dye using 1 lapis lazuli")
    assert episode.step("inventory").observation == "Inventory: [blue dye] (1) "


def test_state_key_is_the_inventory_whatever_the_order(env: TextCraftEnvironment) -> None:
    def keys(turns: list[str]) -> list[str]:
        episode = env.start(env.catalogue().get("goal:blue_dye"))
        episode.reset()
        return [episode.state_key()] + [(episode.step(turn), episode.state_key())[1] for turn in turns]

    one = keys(["get 2 lapis lazuli", "inventory", "get 1 cornflower", "dance"])
    other = keys(["get 1 cornflower", "get 1 lapis lazuli", "get 1 lapis lazuli"])
    assert one[-1] == other[-1]  # the same items, got in another order and in other amounts per turn
    assert one[0] == keys([])[0] and one[1] == one[2] and one[3] == one[4]  # looking or failing changes nothing
    assert len({one[0], one[1], one[3], other[1], other[2]}) == 5
    crafted = keys(["get 1 lapis lazuli", "craft 1 blue dye using 1 lapis lazuli"])
    assert crafted[-1] not in crafted[:-1] + one


@pytest.mark.parametrize("action", ["dance", "get lapis lazuli", "get 0 lapis lazuli", "craft blue dye", ""])
def test_unknown_action(env: TextCraftEnvironment, action: str) -> None:
    (out,) = play(env, "goal:blue_dye", [action])
    assert out.observation == f"Could not execute {action}"
    assert not out.action_valid and out.parsed_action == action and out.reward == 0.0


@pytest.mark.parametrize(
    ("turn", "action"),
    [
        ("Thought: I need lapis first.\nAction: get 1 lapis lazuli", "get 1 lapis lazuli"),
        ("Thought: Action: inventory would help. Action: get 1 lapis lazuli", "get 1 lapis lazuli"),
        ("Action:  Get 1  Lapis Lazuli.\nObservation: Got 1 lapis lazuli", "get 1 lapis lazuli"),
        ("get 1 lapis lazuli", "get 1 lapis lazuli"),
        ("action: `inventory`", "inventory"),
        ("Thought: no idea", "thought: no idea"),
    ],
)
def test_action_extraction(turn: str, action: str) -> None:
    assert extract_action(turn) == action


def test_raw_turn_is_parsed_and_echoed(env: TextCraftEnvironment) -> None:
    (out,) = play(env, "goal:blue_dye", ["Thought: lapis is a base item. Action: get 1 lapis lazuli"])
    assert out.observation == "Got 1 lapis lazuli" and out.parsed_action == "get 1 lapis lazuli"


# --- oracle -----------------------------------------------------------------------------------------


def test_expert_solves_every_real_goal(env: TextCraftEnvironment) -> None:
    tasks = real_tasks(env)
    assert len(tasks) == 544
    turns = {}
    for task in tasks:
        outcome, used = run_expert(env, task)
        assert outcome.success and outcome.reward == 1.0
        assert used == int(task.metadata["expert_turns"])
        turns[task.id] = used
    assert sum(t > 30 for t in turns.values()) <= 2  # netherite block (48) and anvil (37)


def test_expert_turn_format_and_end(env: TextCraftEnvironment) -> None:
    episode = env.start(env.catalogue().get("goal:blue_dye"))
    first = episode.expert_action()
    assert first is not None and first.startswith("Thought: ") and first.endswith("Action: get 1 lapis lazuli")
    episode.step(first)
    assert episode.step(episode.expert_action() or "").success
    assert episode.expert_action() is None


def test_expert_recovers_from_a_detour(env: TextCraftEnvironment) -> None:
    task = env.catalogue().get("goal:crafting_table")
    episode = env.start(task)
    # wander: a useless item, half of what is needed, planks of one wood, a failed craft
    for turn in ["get 5 cobblestone", "get 1 acacia logs", "craft 4 acacia planks using 1 acacia logs", "dance"]:
        episode.step(turn)
    for _ in range(10):
        outcome = episode.step(episode.expert_action() or "")
        assert outcome.action_valid
        if outcome.terminated:
            break
    assert outcome.success
    # it used the acacia planks already held instead of starting over
    assert episode.world.inventory.get("minecraft:cobblestone") == 5


def test_plan_reuses_inventory(env: TextCraftEnvironment) -> None:
    empty = plan(env.book, "minecraft:cyan_banner", {})
    stocked = plan(env.book, "minecraft:cyan_banner", {"minecraft:cyan_wool": 6, "minecraft:stick": 1})
    assert len(empty) > 20
    assert [a.action for a in stocked] == ["craft 1 cyan banner using 6 cyan wool, 1 stick"]


@pytest.mark.parametrize("depth", range(1, 7))
def test_expert_solves_generated_worlds(env: TextCraftEnvironment, depth: int) -> None:
    specs = [f"gen:depth={depth}:seed={seed}" for seed in range(6)]
    specs += [
        f"gen:depth={depth}:fanin=4:count=9:tags=1.0:distractors=30:seed=7",
        f"gen:depth={depth}:fanin=1:tags=0.0:seed=8",
    ]
    for task_id in specs:
        task = env.catalogue().get(task_id)
        assert task.id == task_id and task.metadata["depth"] == str(depth)
        outcome, _ = run_expert(env, task, limit=1000)
        assert outcome.success


# --- generator ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", range(1, 7))
def test_generated_goal_has_exact_depth(depth: int) -> None:
    for seed in range(20):
        world = generate(GenSpec(depth=depth, seed=seed))
        assert world.book.depth(world.goal) == depth
        assert not world.book.skipped


def test_generator_controls() -> None:
    def recipes(spec: GenSpec) -> list:
        return [r for rs in generate(spec).book.recipes.values() for r in rs]

    narrow = recipes(GenSpec(depth=4, seed=3, fanin=1, count=1, tags=0.0, distractors=0))
    assert all(len(r.inputs) == 1 and r.inputs[0].count == 1 for r in narrow)
    assert not any(i.is_tag for r in narrow for i in r.inputs)
    wide = [recipes(GenSpec(depth=3, seed=s, fanin=4, count=9, tags=1.0)) for s in range(10)]
    assert max(len(r.inputs) for rs in wide for r in rs) == 4
    assert max(i.count for rs in wide for r in rs for i in r.inputs) > 4
    assert any(i.is_tag for rs in wide for r in rs for i in r.inputs)
    few = generate(GenSpec(depth=2, seed=1, distractors=0))
    many = generate(GenSpec(depth=2, seed=1, distractors=20))
    assert len(many.book.goals()) == len(few.book.goals()) + 20 and many.goal == few.goal
    assert all(many.book.recipes[item] == rs for item, rs in few.book.recipes.items())  # same tree


def test_generated_tags_work_like_planks(env: TextCraftEnvironment) -> None:
    for seed in range(30):
        world = generate(GenSpec(depth=2, seed=seed, tags=1.0))
        tags = [i for r in world.book.recipes[world.goal] for i in r.inputs if i.is_tag]
        if tags:
            members = world.book.members(tags[0].name)
            assert len(members) >= 2 and all(world.book.depth(m) == 1 for m in members)
            text = env.start(env.catalogue().get(f"gen:depth=2:tags=1.0:seed={seed}")).reset()
            assert all(f" {m.removeprefix('minecraft:').replace('_', ' ')} using " in text for m in members)
            return
    raise AssertionError("no tag in 30 tag-heavy worlds")


def test_gen_ids_are_canonical_and_validated(env: TextCraftEnvironment) -> None:
    catalogue = env.catalogue()
    assert catalogue.get("gen:seed=5:depth=3").id == "gen:depth=3:seed=5"
    assert catalogue.get("gen:depth=3:fanin=3:seed=5").id == "gen:depth=3:seed=5"  # default dropped
    assert catalogue.get("gen:depth=3:tags=0.5:seed=5").id == "gen:depth=3:tags=0.5:seed=5"
    for bad in ["gen:depth=3", "gen:depth=9:seed=1", "gen:depth=2:seed=-1", "gen:depth=2:color=3:seed=1", "gen:"]:
        with pytest.raises(UnknownTask):
            catalogue.get(bad)


# --- tasks, tiers, splits -------------------------------------------------------------------------


def test_task_ids_and_aliases(env: TextCraftEnvironment) -> None:
    catalogue = env.catalogue()
    blue = catalogue.get("goal:blue_dye")
    assert catalogue.get("goal:minecraft:blue_dye") == blue
    assert catalogue.get("goal:blue dye") == blue
    for bad in ["goal:lapis_lazuli", "goal:nothing", "textcraft-x", "blue_dye", ""]:
        with pytest.raises(UnknownTask):
            catalogue.get(bad)
    # AgentGym numbering: depth >= 2 goals, deepest first, then by name; index modulo 419
    first = catalogue.get("textcraft-0")
    assert first.id == "textcraft-0" and first.metadata["goal"] == "cyan banner" and first.category == "depth-4"
    assert catalogue.get("textcraft-419").metadata["goal"] == "cyan banner"
    assert catalogue.get("textcraft-11").category == "depth-3"
    assert catalogue.get("textcraft-418").category == "depth-2"
    same = env.start(catalogue.get("goal:cyan_banner")).reset()
    assert env.start(first).reset() == same


def test_listing_order_tiers_and_categories(env: TextCraftEnvironment) -> None:
    tasks = real_tasks(env)
    keys = [(int(t.metadata["depth"]), t.id) for t in tasks]
    assert keys == sorted(keys)
    assert {t.difficulty for t in tasks if t.category in ("depth-1", "depth-2")} == {"easy"}
    assert {t.difficulty for t in tasks if t.category in ("depth-3", "depth-4")} == {"hard"}
    generated = [t for t in env.catalogue().list() if t.metadata["source"] == "generated"]
    assert len(generated) == 4 * 200
    assert Counter(t.category for t in generated) == {f"gen-depth-{d}": 200 for d in range(1, 5)}
    assert len(env.catalogue().list(category="depth-4")) == 11
    assert len(env.catalogue().list(difficulty="easy", category="depth-2")) == 291


def test_configurable_tiers() -> None:
    env = TextCraftEnvironment(tiers={"easy": (1, 1), "medium": (2, 2), "hard": (3, 4)}, generated_per_depth=0)
    counts = Counter(t.difficulty for t in env.catalogue().list())
    assert counts == {"easy": 125, "medium": 291, "hard": 128}
    assert env.catalogue().get("gen:depth=6:seed=1").difficulty == "hard"


def test_splits_are_disjoint_and_about_80_20(env: TextCraftEnvironment) -> None:
    tasks = env.catalogue().list()
    train = {t.id for t in tasks if t.split == "train"}
    test = {t.id for t in tasks if t.split == "test"}
    assert train and test and not train & test and len(train) + len(test) == len(tasks)
    real = real_tasks(env)
    train_goals = {t.metadata["goal"] for t in real if t.split == "train"}
    test_goals = {t.metadata["goal"] for t in real if t.split == "test"}
    assert not train_goals & test_goals
    assert 0.12 < len(test_goals) / len(real) < 0.28
    for depth in (1, 2, 3, 4):  # every depth has goals on both sides
        assert {t.split for t in real if t.category == f"depth-{depth}"} == {"train", "test"}
    # an alias lands in its goal's split
    alias = env.catalogue().get("textcraft-5")
    assert alias.split == env.catalogue().get("goal:" + alias.metadata["goal"]).split


def test_describe(env: TextCraftEnvironment) -> None:
    info = env.describe()
    assert info.name == "textcraft"
    assert info.provides_expert and not info.provides_valid_actions
    assert info.default_max_turns == 30
    for text in ("get <n> <item>", "craft <n> <item> using <n> <ingredient>", "inventory", "Thought:", "Action:"):
        assert text in info.instruction
    assert env.start(env.catalogue().get("goal:blue_dye")).valid_actions() is None


# --- determinism ------------------------------------------------------------------------------------

DETERMINISM_IDS = [
    "goal:blue_dye",
    "goal:cyan_banner",
    "textcraft-100",
    "gen:depth=3:seed=42",
    "gen:depth=5:tags=1.0:seed=9",
]
_PRINT_OBSERVATIONS = """
import json, sys
from gymwire.env_servers.textcraft import TextCraftEnvironment
env = TextCraftEnvironment()
print(json.dumps([env.start(env.catalogue().get(i)).reset() for i in sys.argv[1:]]))
"""


def test_same_task_same_first_observation(env: TextCraftEnvironment) -> None:
    here = [env.start(env.catalogue().get(i)).reset() for i in DETERMINISM_IDS]
    assert here == [env.start(env.catalogue().get(i)).reset() for i in DETERMINISM_IDS]
    assert TextCraftEnvironment(generated_per_depth=0).start(env.catalogue().get(DETERMINISM_IDS[0])).reset() == here[0]
    assert len(set(here)) == len(here)


def test_first_observation_is_the_same_in_a_fresh_process(env: TextCraftEnvironment) -> None:
    here = [env.start(env.catalogue().get(i)).reset() for i in DETERMINISM_IDS]
    # set order must not leak into the text
    assert json_in_fresh_process(_PRINT_OBSERVATIONS, *DETERMINISM_IDS, hash_seed="12345") == here

"""Generated task ids, difficulty tiers, splits and the listing.

Id: `gen:<task type>:FloorPlan<N>:<seed>`, e.g. `gen:pick_heat_then_place_in_recep:FloorPlan12:0`
(the task type may also be written with its short alias, `pick_heat_then_place`; `floorplan` in any
case). Every seed >= 0 of every (scene, task type) that the scene can host resolves; the listing shows
seeds `0..per_scene-1` of each. The same id always builds the same room and goal (generator.py).

Category = the task type. Difficulty = the tier whose task types include it; by default
easy = pick_and_place_simple and hard = the other five (a parameter: any partition of the six).
Every task carries `expert_turns`, the oracle's turns from the start, and `max_turns`, its turn
limit: a quarter more than the expert's turns for an agent's detours, never below `BASE_MAX_TURNS`
(AgentGym's 30) nor above `MAX_TURNS_LIMIT` (`turn_limit`). The expert searches honestly (it knows
only what it has been shown), so a task whose object hides in the last of a kitchen's 18 cabinets
needs 50 turns: the limit follows the task instead of cutting it off. A Reset without max_turns gets
the task's own limit (the SDK's rule); the server's default (`BASE_MAX_TURNS`) is for a task that
states none (real game files).

Splits are by scene, as ALFWorld's seen/unseen evaluation: the test split is ALFRED's held-out
scenes from the wheel (`TEST_SCENE_NUMBERS`: FloorPlan 1-6, 201-206, 301-306, 401-406) unless
`test_scenes` says otherwise, and train the other 96; no room of one split appears in the other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gymwire.env_servers.alfworld.assets import load_tables
from gymwire.env_servers.alfworld.expert import Expert
from gymwire.env_servers.alfworld.generator import GeneratedTask, NoSuchTask, cached, goal_candidates
from gymwire.env_servers.alfworld.goals import SIMPLE, TASK_TYPES, task_type_named
from gymwire.env_servers.alfworld.scenes import scene_layout
from gymwire.env_servers.alfworld.text import WORDINGS
from gymwire.env_servers.alfworld.world import World
from gymwire.env_servers.sdk import Task

GEN_PREFIX = "gen:"
DEFAULT_TIERS: Mapping[str, tuple[str, ...]] = {"easy": (SIMPLE,), "hard": tuple(t for t in TASK_TYPES if t != SIMPLE)}
_GEN_ID = re.compile(r"gen:([a-z_]+):floorplan(\d{1,3}):(\d{1,9})", re.IGNORECASE)
MAX_EXPERT_TURNS = 200
BASE_MAX_TURNS = 30  # the turn limit of a task the expert solves in 24 turns or fewer
MAX_TURNS_LIMIT = 100  # the largest turn limit a Reset may ask for


def turn_limit(expert_turns: int) -> int:
    """A task's turn limit: the expert's turns and a quarter more, within [BASE_MAX_TURNS, MAX_TURNS_LIMIT]."""
    return min(MAX_TURNS_LIMIT, max(BASE_MAX_TURNS, math.ceil(1.25 * expert_turns)))


@dataclass(frozen=True)
class GenId:
    task_type: str
    scene: int
    seed: int

    def task_id(self) -> str:
        return f"{GEN_PREFIX}{self.task_type}:FloorPlan{self.scene}:{self.seed}"


def parse_generated_id(task_id: str) -> GenId | None:
    m = _GEN_ID.fullmatch(task_id.strip())
    if not m:
        return None
    task_type = task_type_named(m.group(1))
    return GenId(task_type, int(m.group(2)), int(m.group(3))) if task_type else None


def expert_plan(task: GeneratedTask) -> list[str]:
    """The oracle's actions from the start to the goal."""
    world = World(task.room, WORDINGS["agentgym"])
    expert = Expert(world, task.goal)
    actions: list[str] = []
    while (step := expert.next_step()) is not None and len(actions) < MAX_EXPERT_TURNS:
        actions.append(step.action)
        world.act(step.action)
    return actions


def tier_table(tiers: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """task type -> tier name; every task type in exactly one tier."""
    table: dict[str, str] = {}
    for tier, names in tiers.items():
        for name in names:
            task_type = task_type_named(name)
            if task_type is None:
                raise ValueError(f"tier {tier!r}: unknown task type {name!r}; known: {', '.join(TASK_TYPES)}")
            if task_type in table:
                raise ValueError(f"task type {task_type} is in tiers {table[task_type]!r} and {tier!r}")
            table[task_type] = tier
    missing = [t for t in TASK_TYPES if t not in table]
    if missing:
        raise ValueError(f"task types without a tier: {', '.join(missing)}")
    return table


class GeneratedTasks:
    """Ids <-> tasks for the generator, under one tier and split policy."""

    def __init__(self, tiers: Mapping[str, Iterable[str]], test_scenes: Iterable[int] | None, per_scene: int):
        tables = load_tables()
        self.tier_of = tier_table(tiers)
        self.scenes = tables.all_scenes()
        self.test_scenes = frozenset(tables.test_scenes if test_scenes is None else test_scenes)
        unknown = self.test_scenes - set(self.scenes)
        if unknown:
            raise ValueError(f"test_scenes names scenes ALFRED does not have: {sorted(unknown)}")
        if per_scene < 0:
            raise ValueError(f"per_scene must be >= 0, got {per_scene}")
        self.per_scene = per_scene

    def split_of(self, scene: int) -> str:
        return "test" if scene in self.test_scenes else "train"

    def task(self, gen: GenId) -> Task:
        made = cached(gen.task_type, gen.scene, gen.seed)
        goal = made.goal
        metadata = {
            "source": "generated",
            "scene": f"FloorPlan{gen.scene}",
            "room_type": made.room.room_type,
            "object": goal.obj.lower(),
            "goal": goal.text,
        }
        turns = len(expert_plan(made))
        metadata["expert_turns"] = str(turns)
        metadata["max_turns"] = str(turn_limit(turns))
        if goal.recep:
            metadata["receptacle"] = goal.recep.lower()
        if goal.toggle:
            metadata["lamp"] = goal.toggle.lower()
        return Task(
            id=gen.task_id(),
            split=self.split_of(gen.scene),
            difficulty=self.tier_of[gen.task_type],
            category=gen.task_type,
            metadata=metadata,
        )

    def resolve(self, task_id: str) -> Task | None:
        gen = parse_generated_id(task_id)
        if gen is None:
            return None
        try:
            return self.task(gen)
        except NoSuchTask:
            return None

    def listed(self, task_types: Sequence[str] = TASK_TYPES) -> list[Task]:
        """Seeds 0..per_scene-1 of every (scene, task type) the scene can host, scene by scene."""
        out = []
        for scene in self.scenes:
            layout = scene_layout(scene)
            for task_type in task_types:
                if goal_candidates(layout, task_type):
                    out += [self.task(GenId(task_type, scene, seed)) for seed in range(self.per_scene)]
        return out

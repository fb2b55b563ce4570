"""Generated tasks: a scene, a task type and a seed make one room with its objects and one goal.

Everything is drawn from `random.Random("alfworld:<task type>:<scene>:<seed>")` (string seeds hash
the same way in every process), over sorted lists only, so a task is the same everywhere.

1. The goal. The candidates are every (object class, receptacle class) pair the scene allows: the
   object class is present and, for clean/heat/cool, cleanable/heatable/coolable (the wheel's
   tables); the receptacle class is in the room, can hold the object and is not the appliance of
   the treatment (no "cool ... in fridge"); some other receptacle can hold the object at the
   start. look_at_obj_in_light pairs an object class with a lamp class of the room. Clean needs a
   sink basin, heat a microwave, cool a fridge; each task type is generated only in the room types
   the wheel's `GOALS_VALID` gives it (heat and cool: kitchens; look: living rooms and bedrooms; ...).
2. The objects: 1-3 instances of every placeable class of the scene (weights 6:3:1), 2-3 of the
   goal's class for pick_two_obj_and_place, one of each lamp class. Each goes to a uniformly drawn
   receptacle that the compatibility table allows; goal objects never start in a receptacle of the
   goal's class (the goal never holds at the start). Lamps stand on desks, tables, dressers, shelves
   or the TV stand.
3. Names: objects get AI2-THOR-style ids at drawn positions and are numbered by ALFWorld's rule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from gymwire.env_servers.alfworld.assets import load_tables
from gymwire.env_servers.alfworld.goals import LOOK, TREATMENTS, TWO, Goal
from gymwire.env_servers.alfworld.names import display_order, number_instances
from gymwire.env_servers.alfworld.scenes import SceneLayout, random_position, scene_layout
from gymwire.env_servers.alfworld.world import ReceptacleSpec, Room, ThingSpec

LAMP_HOSTS = frozenset({"Desk", "SideTable", "Dresser", "DiningTable", "CoffeeTable", "Shelf", "TVStand"})
INSTANCE_COUNTS, INSTANCE_WEIGHTS = (1, 2, 3), (6, 3, 1)


class NoSuchTask(ValueError):
    """The scene cannot host this task type (wrong room type, or no fitting objects)."""


@dataclass(frozen=True)
class GeneratedTask:
    task_type: str
    scene: int
    seed: int
    room: Room
    goal: Goal


def goal_candidates(layout: SceneLayout, task_type: str) -> list[tuple[str, str]]:
    """Sorted (object class, receptacle or lamp class) pairs this scene allows for `task_type`."""
    tables = load_tables()
    if layout.room_type not in tables.goals_valid.get(task_type, ()):
        return []
    kinds = layout.receptacle_classes()
    holders = {obj: {k for k in kinds if obj in tables.receptacle_objects[k]} for obj in layout.objects}
    if task_type == LOOK:
        if not any(k in LAMP_HOSTS for k in kinds):
            return []
        return [(obj, lamp) for obj in layout.objects if holders[obj] for lamp in layout.lamps]
    treatment = TREATMENTS.get(task_type)
    allowed = {"clean": tables.cleanable, "hot": tables.heatable, "cool": tables.coolable}
    pairs = []
    for obj in layout.objects:
        if treatment is not None and (treatment[1] not in kinds or obj not in allowed[treatment[0]]):
            continue
        for recep in sorted(holders[obj]):
            if treatment is not None and recep == treatment[1]:
                continue
            if holders[obj] - {recep}:
                pairs.append((obj, recep))
    return pairs


def generate(task_type: str, scene: int, seed: int) -> GeneratedTask:
    tables = load_tables()
    try:
        layout = scene_layout(scene)
    except (KeyError, FileNotFoundError):
        raise NoSuchTask(f"no ALFRED scene FloorPlan{scene}") from None
    candidates = goal_candidates(layout, task_type)
    if not candidates:
        raise NoSuchTask(f"FloorPlan{scene} ({layout.room_type}) has no {task_type} task")
    rng = random.Random(f"alfworld:{task_type}:{scene}:{seed}")
    obj, other = rng.choice(candidates)
    recep, toggle = ("", other) if task_type == LOOK else (other, "")
    template = rng.choice(tables.templates[task_type])
    text = template.format(obj=obj.lower(), recep=recep.lower(), toggle=toggle.lower(), mrecep="")
    goal = Goal(task_type, obj, recep, toggle, text)
    return GeneratedTask(task_type, scene, seed, _furnish(layout, goal, rng), goal)


def _furnish(layout: SceneLayout, goal: Goal, rng: random.Random) -> Room:
    tables = load_tables()
    receptacles = layout.receptacles
    placed: list[tuple[str, str, str]] = []  # (object id, class, receptacle id)
    used: set[str] = set()

    def new_id(kind: str) -> str:
        while True:
            thor_id = f"{kind}|{random_position(rng)}"
            if thor_id not in used:
                used.add(thor_id)
                return thor_id

    for kind in layout.objects:
        spots = [rid for rid, rk in receptacles if kind in tables.receptacle_objects[rk]]
        if kind == goal.obj:
            spots = [rid for rid, rk in receptacles if kind in tables.receptacle_objects[rk] and rk != goal.recep]
            count = rng.choice((2, 3)) if goal.task_type == TWO else rng.choices(INSTANCE_COUNTS, INSTANCE_WEIGHTS)[0]
        else:
            count = rng.choices(INSTANCE_COUNTS, INSTANCE_WEIGHTS)[0]
        for _ in range(count if spots else 0):
            placed.append((new_id(kind), kind, rng.choice(spots)))
    hosts = [rid for rid, rk in receptacles if rk in LAMP_HOSTS]
    for kind in layout.lamps if hosts else ():
        placed.append((new_id(kind), kind, rng.choice(hosts)))

    names = number_instances([rid for rid, _ in receptacles] + [oid for oid, _, _ in placed])
    kind_of = {oid: kind for oid, kind, _ in placed}
    things = tuple(_thing(names[oid], kind_of[oid]) for oid in display_order(kind_of))
    return Room(
        scene=layout.scene,
        room_type=layout.room_type,
        receptacles=tuple(ReceptacleSpec(names[rid], rk, rk in tables.openable) for rid, rk in receptacles),
        things=things,
        placement=tuple((names[oid], names[rid]) for oid, _, rid in placed),
        can_contain=tables.receptacle_objects,
        ids={name: thor_id for thor_id, name in names.items()},
    )


def _thing(name: str, kind: str) -> ThingSpec:
    t = load_tables()
    return ThingSpec(
        name=name,
        kind=kind,
        pickupable=kind not in t.toggleable,
        heatable=kind in t.heatable,
        coolable=kind in t.coolable,
        cleanable=kind in t.cleanable,
        toggleable=kind in t.toggleable,
        sliceable=kind in t.sliceable,
        receptacle_object=kind in t.movable_receptacles,
    )


@lru_cache(maxsize=512)
def cached(task_type: str, scene: int, seed: int) -> GeneratedTask:
    """GRPO groups reset one task many times; a room takes ~1 ms to build."""
    return generate(task_type, scene, seed)

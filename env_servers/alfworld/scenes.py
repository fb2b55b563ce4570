"""The 120 ALFRED scenes as rooms: which receptacles stand in each, and which objects can appear.

Receptacle instances come from the wheel's `FloorPlan<N>-openable.json` (every receptacle with an
interaction pose, keyed by AI2-THOR id); a sink or bathtub stands for its basin (`sinkbasin`,
`bathtubbasin`), as in ALFWorld. Receptacle classes the scene's `FloorPlan<N>-objects.json` names but
that file lacks (stove burners, coffee machines, toasters, most garbage cans and towel holders) are
added with ids at seeded positions: four stove burners, one of anything else. Only classes of the
compatibility table's static receptacles count (a bowl is an object here).

Objects are the scene's classes that the compatibility table lets some receptacle hold (sliced
variants excluded), plus its desk and floor lamps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from gymwire.env_servers.alfworld.assets import AlfredTables, load_tables
from gymwire.env_servers.alfworld.names import class_of, display_order

SYNTHETIC_COUNTS = {"StoveBurner": 4}
BASINS = {"Sink": "SinkBasin", "Bathtub": "BathtubBasin"}


@dataclass(frozen=True)
class SceneLayout:
    scene: int
    room_type: str
    receptacles: tuple[tuple[str, str], ...]  # (AI2-THOR id, class), in ALFWorld's listing order
    objects: tuple[str, ...]  # placeable object classes present, sorted
    lamps: tuple[str, ...]  # lamp classes present, sorted

    def receptacle_classes(self) -> set[str]:
        return {kind for _, kind in self.receptacles}


def random_position(rng: random.Random) -> str:
    return "|".join(f"{rng.uniform(-3.0, 3.0):+06.2f}" for _ in range(3))


def placeable_classes(tables: AlfredTables) -> frozenset[str]:
    held = set().union(*tables.receptacle_objects.values())
    return frozenset(k for k in held if not k.endswith("Sliced")) - tables.static_receptacles


@cache
def scene_layout(scene: int) -> SceneLayout:
    tables = load_tables()
    static = tables.static_receptacles
    found: dict[tuple[str, str], str] = {}  # (class, position) -> id
    for thor_id in tables.layout_receptacles(scene):
        parts = thor_id.split("|")
        kind = BASINS.get(parts[0], class_of(thor_id))
        if kind not in static:
            continue
        position = "|".join(parts[1:4])
        if kind in BASINS.values() and not thor_id.endswith(kind):
            thor_id = f"{parts[0]}|{position}|{kind}"
        found.setdefault((kind, position), thor_id)
    present = {BASINS.get(k, k) for k in tables.layout_objects(scene)}
    have = {kind for kind, _ in found}
    rng = random.Random(f"alfworld-scene:{scene}")
    for kind in sorted((present & static) - have):
        host = next((h for h, basin in BASINS.items() if basin == kind), kind)
        for _ in range(SYNTHETIC_COUNTS.get(kind, 1)):
            position = random_position(rng)
            thor_id = f"{host}|{position}" + (f"|{kind}" if kind in BASINS.values() else "")
            found[(kind, position)] = thor_id
    kinds = {thor_id: kind for (kind, _), thor_id in found.items()}
    objects = sorted(present & placeable_classes(tables))
    lamps = sorted(present & tables.toggleable)
    return SceneLayout(
        scene=scene,
        room_type=tables.room_type(scene),
        receptacles=tuple((i, kinds[i]) for i in display_order(kinds)),
        objects=tuple(objects),
        lamps=tuple(lamps),
    )

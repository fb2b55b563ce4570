"""What the `alfworld` wheel ships, read from the installed package at run time (never copied here).

- `gen/constants.py`: the object/receptacle compatibility table (`VAL_RECEPTACLE_OBJECTS`), the
  openable classes, the heatable/coolable/cleanable/toggleable/sliceable sets
  (`VAL_ACTION_OBJECTS`), the movable receptacles, the scene numbers of each room type and
  ALFRED's train/test scene split, and which task types each room type allows (`GOALS_VALID`);
- `gen/goal_library.py`: the goal templates of every task type ("put a clean {obj} in {recep}");
- `gen/layouts/FloorPlan<N>-objects.json` and `-openable.json`: the object classes present in each
  of the 120 scenes and the receptacle instances (by AI2-THOR id) with an interaction pose;
- `data/alfred.pddl` and `data/alfred.twl2`: the PDDL domain and the text grammar (used by the tests
  that cross-check our wording and by the real-game loader).

The package is located with `find_spec` and its two Python tables are executed as stand-alone
modules: importing `alfworld` itself would run `alfworld/info.py`, which creates
`~/.cache/alfworld` (fails on read-only homes) and sets `ALFWORLD_DATA`. Install the wheel without
its heavy dependencies: `pip install --no-deps alfworld` (it is pure Python and data).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType

MISSING = (
    "the ALFWorld environment needs the data of the `alfworld` wheel (MIT): "
    "pip install --no-deps 'alfworld>=0.4.2'  (its own dependencies are only needed for the real games)"
)


@dataclass(frozen=True)
class AlfredTables:
    """The wheel's tables, in its own CamelCase class names (`SinkBasin`, `DeskLamp`)."""

    package_dir: Path
    receptacle_objects: Mapping[str, frozenset[str]]  # receptacle class -> object classes it can hold
    openable: frozenset[str]
    heatable: frozenset[str]
    coolable: frozenset[str]
    cleanable: frozenset[str]
    toggleable: frozenset[str]
    sliceable: frozenset[str]
    movable_receptacles: frozenset[str]
    scene_types: Mapping[str, tuple[int, ...]]  # room type -> scene numbers
    test_scenes: frozenset[int]  # ALFRED's held-out scenes (6 of 30 per room type)
    goals_valid: Mapping[str, frozenset[str]]  # task type -> room types where it is generated
    templates: Mapping[str, tuple[str, ...]]  # task type -> goal text templates
    goal_pddl: Mapping[str, str]  # task type -> PDDL goal (with `#` for `-`, `{obj}Type` placeholders)

    @property
    def static_receptacles(self) -> frozenset[str]:
        """Receptacle classes that are furniture or appliances (not objects one can carry)."""
        return frozenset(self.receptacle_objects) - self.movable_receptacles

    def room_type(self, scene: int) -> str:
        for name, numbers in self.scene_types.items():
            if scene in numbers:
                return name
        raise KeyError(f"no ALFRED scene FloorPlan{scene}")

    def all_scenes(self) -> tuple[int, ...]:
        return tuple(sorted(n for numbers in self.scene_types.values() for n in numbers))

    def layout_objects(self, scene: int) -> list[str]:
        return json.loads((self.package_dir / "gen" / "layouts" / f"FloorPlan{scene}-objects.json").read_text())

    def layout_receptacles(self, scene: int) -> list[str]:
        path = self.package_dir / "gen" / "layouts" / f"FloorPlan{scene}-openable.json"
        return sorted(json.loads(path.read_text()))

    @property
    def domain_pddl(self) -> str:
        return (self.package_dir / "data" / "alfred.pddl").read_text()

    @property
    def grammar_twl2(self) -> str:
        return (self.package_dir / "data" / "alfred.twl2").read_text()


def package_dir() -> Path:
    spec = importlib.util.find_spec("alfworld")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(MISSING)
    return Path(next(iter(spec.submodule_search_locations)))


def _load_module(path: Path, name: str) -> ModuleType:
    if not path.is_file():
        raise RuntimeError(f"{MISSING} ({path} is missing: is the installed `alfworld` older than 0.4?)")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=1)
def load_tables() -> AlfredTables:
    root = package_dir()
    constants = _load_module(root / "gen" / "constants.py", "_gymwire_alfworld_constants")
    library = _load_module(root / "gen" / "goal_library.py", "_gymwire_alfworld_goal_library")
    actions = constants.VAL_ACTION_OBJECTS
    return AlfredTables(
        package_dir=root,
        receptacle_objects={r: frozenset(objs) for r, objs in constants.VAL_RECEPTACLE_OBJECTS.items()},
        openable=frozenset(constants.OPENABLE_CLASS_LIST),
        heatable=frozenset(actions["Heatable"]),
        coolable=frozenset(actions["Coolable"]),
        cleanable=frozenset(actions["Cleanable"]),
        toggleable=frozenset(actions["Toggleable"]),
        sliceable=frozenset(actions["Sliceable"]),
        movable_receptacles=frozenset(constants.MOVABLE_RECEPTACLES),
        scene_types={room: tuple(numbers) for room, numbers in constants.SCENE_TYPE.items()},
        test_scenes=frozenset(constants.TEST_SCENE_NUMBERS),
        goals_valid={goal: frozenset(rooms) for goal, rooms in constants.GOALS_VALID.items()},
        templates={goal: tuple(entry["templates"]) for goal, entry in library.gdict.items()},
        goal_pddl={goal: entry["pddl"] for goal, entry in library.gdict.items()},
    )

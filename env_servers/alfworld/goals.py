"""The six ALFWorld task types: their goal conditions and their goal sentences.

Conditions follow the PDDL goals of the wheel's `gen/goal_library.py`:
- pick_and_place_simple: some object of class O is in some receptacle of class R;
- pick_clean/heat/cool_then_place_in_recep: the same, with that object clean / hot / cool;
- pick_two_obj_and_place: two different objects of class O in the *same* receptacle of class R;
- look_at_obj_in_light: the agent holds an object of class O, and a lamp of class L that has been
  switched on stands in the receptacle at the agent's place.
The sentence is one of the task type's templates (`put a clean {obj} in {recep}`, `clean some {obj}
and put it in {recep}`, ...) filled with lower-cased class names, as ALFWorld's games do.
"""

from __future__ import annotations

from dataclasses import dataclass

from gymwire.env_servers.alfworld.world import CLEANERS, COOLERS, HEATERS, World

SIMPLE = "pick_and_place_simple"
LOOK = "look_at_obj_in_light"
CLEAN = "pick_clean_then_place_in_recep"
HEAT = "pick_heat_then_place_in_recep"
COOL = "pick_cool_then_place_in_recep"
TWO = "pick_two_obj_and_place"
TASK_TYPES = (SIMPLE, LOOK, CLEAN, HEAT, COOL, TWO)  # ALFWorld's numbering 1-6
SHORT_NAMES = {CLEAN: "pick_clean_then_place", HEAT: "pick_heat_then_place", COOL: "pick_cool_then_place"}

# task type -> (state the object must have, appliance class that gives it, verb)
TREATMENTS = {CLEAN: ("clean", CLEANERS, "clean"), HEAT: ("hot", HEATERS, "heat"), COOL: ("cool", COOLERS, "cool")}


def task_type_named(name: str) -> str | None:
    """Canonical task type for its ALFWorld name or the short alias (`pick_heat_then_place`)."""
    name = name.strip().lower()
    if name in TASK_TYPES:
        return name
    return next((full for full, short in SHORT_NAMES.items() if short == name), None)


@dataclass(frozen=True)
class Goal:
    task_type: str
    obj: str  # object class, e.g. "Lettuce"
    recep: str = ""  # receptacle class, e.g. "DiningTable" (not for look_at_obj_in_light)
    toggle: str = ""  # lamp class (look_at_obj_in_light only)
    text: str = ""  # "put a clean lettuce in diningtable"

    @property
    def treatment(self) -> tuple[str, str, str] | None:
        return TREATMENTS.get(self.task_type)

    def ready(self, world: World, thing: str) -> bool:
        """Whether `thing` has the state the task asks for (always, without a treatment)."""
        t = self.treatment
        return t is None or world.has_state(thing, t[0])

    def satisfied(self, world: World) -> bool:
        if self.task_type == LOOK:
            held = world.holding
            if held is None or world.things[held].kind != self.obj or world.at is None:
                return False
            return any(
                world.where[lamp] == world.at and world.has_state(lamp, "toggled")
                for lamp in world.of_kind(self.toggle)
            )
        inside: dict[str, int] = {}
        for thing in world.of_kind(self.obj):
            r = world.where[thing]
            if r is not None and world.receptacles[r].kind == self.recep and self.ready(world, thing):
                inside[r] = inside.get(r, 0) + 1
        need = 2 if self.task_type == TWO else 1
        return any(n >= need for n in inside.values())

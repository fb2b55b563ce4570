"""The household: receptacles, objects, the agent, and the rules of ALFWorld's PDDL domain.

A room is static data (`Room`: which receptacles and objects exist and where each object starts);
a `World` is one episode's mutable state over it. The rules are those of `alfworld/data/alfred.pddl`,
action by action (preconditions -> the command is admissible, effects -> the new state):

- GotoLocation `go to R`: any receptacle but the one the agent is at.
- OpenObject / CloseObject `open R` / `close R`: R openable, the agent at R, R closed / open.
- PickupObject `take O from R`: O pickupable and in R, the agent at R, hands empty, R open or not openable.
- PutObject `put O in/on R`: O held, the agent at R, R open or not openable, R's class can contain O's
  (the wheel's compatibility table).
- HeatObject / CoolObject / CleanObject `heat|cool|clean O with R`: O held and heatable / coolable /
  cleanable, the agent at R, R a microwave / fridge / sink basin (the door need not be open). Heating
  makes O hot and not cool, cooling the reverse.
- ToggleObject `use O`: O toggleable (a desk or floor lamp) and in the receptacle the agent is at.
  It sets "toggled" for good (ALFWorld's reply is then always `You turn on the ...`).
- SliceObject `slice O with K`: O sliceable and at the agent's place (in R, even closed), a knife or
  butter knife held.
- examineReceptacle `examine R` (the agent at R), examineObject `examine O` (O held: the engine never
  grounds the domain's other branch, an object in an open receptacle at the agent's place),
  `inventory`, `look`, and `help` in the 0.4 wording.

Every other command is not admissible and answers `Nothing happens.` without changing anything, as
TextWorld's PDDL engine does (it matches the command against the admissible list). There is one
receptacle per location (ALFWorld's rooms sometimes share one location between, e.g., two drawers).
These admissible sets and replies were checked against ALFWorld's own engine (TextWorld's PDDL
backend) on exported copies of our rooms (pddl_export.py; tests/test_alfworld.py).
Objects carried inside movable receptacles (a pen in a mug) are not modelled, as ALFWorld's domain
comments those actions out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from gymwire.env_servers.alfworld import text
from gymwire.env_servers.alfworld.text import Wording

KNIVES = frozenset({"Knife", "ButterKnife"})
HEATERS, COOLERS, CLEANERS = "Microwave", "Fridge", "SinkBasin"


@dataclass(frozen=True)
class ReceptacleSpec:
    name: str  # "cabinet 3"
    kind: str  # "Cabinet"
    openable: bool


@dataclass(frozen=True)
class ThingSpec:
    name: str  # "mug 2"
    kind: str  # "Mug"
    pickupable: bool = True
    heatable: bool = False
    coolable: bool = False
    cleanable: bool = False
    toggleable: bool = False
    sliceable: bool = False
    receptacle_object: bool = False  # bowl, cup, mug, plate, pan, pot, box: examined as containers


@dataclass(frozen=True)
class Room:
    """A generated room: receptacles and objects in ALFWorld's listing order, and where objects start."""

    scene: int
    room_type: str
    receptacles: tuple[ReceptacleSpec, ...]
    things: tuple[ThingSpec, ...]
    placement: tuple[tuple[str, str], ...]  # (object name, receptacle name)
    can_contain: Mapping[str, frozenset[str]]  # receptacle class -> object classes
    ids: Mapping[str, str] = field(default_factory=dict)  # name -> AI2-THOR-style id (for PDDL export)

    def receptacle(self, name: str) -> ReceptacleSpec:
        return next(r for r in self.receptacles if r.name == name)


class Action(NamedTuple):
    verb: str  # goto open close take put heat cool clean use slice examine inventory look help
    obj: str = ""
    recep: str = ""


class World:
    """One episode's state. `commands()` is the admissible list; `act(command)` applies one of them."""

    def __init__(self, room: Room, wording: Wording):
        self.room = room
        self.wording = wording
        self.receptacles = {r.name: r for r in room.receptacles}
        self.things = {t.name: t for t in room.things}
        self._order = {t.name: i for i, t in enumerate(room.things)}
        self.where: dict[str, str | None] = dict(room.placement)  # None: in the agent's hands
        self.opened: set[str] = set()
        self.states: dict[str, set[str]] = {t.name: set() for t in room.things}  # hot cool clean sliced toggled
        self.at: str | None = None  # None: the middle of the room
        self.holding: str | None = None
        self.taken_from: dict[str, str] = {}
        self.seen: set[str] = set()  # receptacles whose inside the agent has been shown
        self._version = 0
        self._cache: tuple[int, dict[str, Action]] | None = None

    # ----- what the agent can see -------------------------------------------------------------

    def contents(self, recep: str) -> list[str]:
        return sorted((t for t, r in self.where.items() if r == recep), key=self._order.__getitem__)

    def accessible(self, recep: str) -> bool:
        return not self.receptacles[recep].openable or recep in self.opened

    def describe_receptacle(self, recep: str) -> str:
        spec = self.receptacles[recep]
        if spec.openable and recep in self.opened:
            return text.RECEPTACLE_OPEN.format(r=recep, listing=text.listing(self.contents(recep)))
        if spec.openable:
            return text.RECEPTACLE_CLOSED.format(r=recep)
        return text.RECEPTACLE_SURFACE.format(r=recep, listing=text.listing(self.contents(recep)))

    def describe_room(self) -> str:
        return text.MIDDLE_OF_ROOM.format(listing=text.listing([r.name for r in self.room.receptacles]))

    def look(self) -> str:
        """ALFWorld's `look` lists what stands at the agent's location: in the middle of the room (the
        start, where no receptacle stands) that is nothing, unlike the first observation."""
        if self.at is None:
            return text.MIDDLE_OF_ROOM.format(listing="nothing")
        return text.FACING.format(r=self.at, listing="nothing")

    def describe_thing(self, name: str) -> str:
        spec, states = self.things[name], self.states[name]
        if spec.receptacle_object:
            return text.EXAMINE_RECEPTACLE_OBJECT.format(o=name, listing="nothing")
        for needed, sentence in text.EXAMINE_STATES:
            if needed <= states:
                return sentence.format(o=name)
        if spec.toggleable:
            return (text.EXAMINE_LAMP_ON if "toggled" in states else text.EXAMINE_LAMP_OFF).format(o=name)
        if spec.sliceable and "sliced" in states:
            return text.EXAMINE_SLICED.format(o=name)
        return text.EXAMINE_PLAIN.format(o=name)

    def inventory(self) -> str:
        if self.holding is None:
            return text.CARRYING_NOTHING
        return text.CARRYING.format(listing=text.listing([self.holding]))

    # ----- admissible commands --------------------------------------------------------------

    def admissible(self) -> dict[str, Action]:
        if self._cache is not None and self._cache[0] == self._version:
            return self._cache[1]
        cmds: dict[str, Action] = {f"go to {r}": Action("goto", recep=r) for r in self.receptacles if r != self.at}
        cmds["inventory"] = Action("inventory")
        cmds["look"] = Action("look")
        if self.wording.has_help:
            cmds["help"] = Action("help")
        held = self.things[self.holding] if self.holding else None
        if held is not None:
            cmds[f"examine {held.name}"] = Action("examine", obj=held.name)
        if self.at is not None:
            self._here(self.at, held, cmds)
        self._cache = (self._version, cmds)
        return cmds

    def _here(self, r: str, held: ThingSpec | None, cmds: dict[str, Action]) -> None:
        spec = self.receptacles[r]
        cmds[f"examine {r}"] = Action("examine", recep=r)
        if spec.openable:
            if r in self.opened:
                cmds[f"close {r}"] = Action("close", recep=r)
            else:
                cmds[f"open {r}"] = Action("open", recep=r)
        reachable = self.accessible(r)
        for name in self.contents(r):
            thing = self.things[name]
            if reachable and thing.pickupable and held is None:
                cmds[f"take {name} from {r}"] = Action("take", obj=name, recep=r)
            if thing.toggleable:
                cmds[f"use {name}"] = Action("use", obj=name)
            if thing.sliceable and held is not None and held.kind in KNIVES:
                cmds[f"slice {name} with {held.name}"] = Action("slice", obj=name, recep=held.name)
        if held is None:
            return
        if reachable and held.kind in self.room.can_contain.get(spec.kind, ()):
            cmds[self.wording.put_command.format(o=held.name, r=r)] = Action("put", obj=held.name, recep=r)
        if spec.kind == HEATERS and held.heatable:
            cmds[f"heat {held.name} with {r}"] = Action("heat", obj=held.name, recep=r)
        if spec.kind == COOLERS and held.coolable:
            cmds[f"cool {held.name} with {r}"] = Action("cool", obj=held.name, recep=r)
        if spec.kind == CLEANERS and held.cleanable:
            cmds[f"clean {held.name} with {r}"] = Action("clean", obj=held.name, recep=r)

    def commands(self) -> list[str]:
        """The admissible commands, sorted as TextWorld sorts them."""
        return sorted(self.admissible())

    # ----- effects ----------------------------------------------------------------------------

    def act(self, command: str) -> tuple[str, bool]:
        """Apply a canonical command: (reply, admissible). Not admissible: `Nothing happens.`, no change."""
        action = self.admissible().get(command)
        if action is None:
            return text.NOTHING_HAPPENS, False
        self._version += 1
        return self._apply(action), True

    def _apply(self, a: Action) -> str:
        if a.verb == "goto":
            self.at = a.recep
            prefix = text.ARRIVE.format(r=a.recep) if self.wording.arrive_prefix else ""
            return prefix + self._reveal(a.recep)
        if a.verb == "open":
            self.opened.add(a.recep)
            return text.OPEN.format(r=a.recep) + self._reveal(a.recep)
        if a.verb == "close":
            self.opened.discard(a.recep)
            return text.CLOSE.format(r=a.recep)
        if a.verb == "take":
            self.where[a.obj] = None
            self.holding = a.obj
            self.taken_from[a.obj] = a.recep
            return text.TAKE.format(o=a.obj, r=a.recep)
        if a.verb == "put":
            self.where[a.obj] = a.recep
            self.holding = None
            return self.wording.put_reply.format(o=a.obj, r=a.recep)
        if a.verb in ("heat", "cool", "clean"):
            states = self.states[a.obj]
            if a.verb == "heat":
                states.discard("cool")
                states.add("hot")
            elif a.verb == "cool":
                states.discard("hot")
                states.add("cool")
            else:
                states.add("clean")
            return {"heat": text.HEAT, "cool": text.COOL, "clean": text.CLEAN}[a.verb].format(o=a.obj, r=a.recep)
        if a.verb == "use":
            self.states[a.obj].add("toggled")
            return text.TURN_ON.format(o=a.obj)
        if a.verb == "slice":
            self.states[a.obj].add("sliced")
            return text.SLICE.format(co=a.obj, ko=a.recep)
        if a.verb == "examine":
            return self._reveal(a.recep) if a.recep else self.describe_thing(a.obj)
        if a.verb == "inventory":
            return self.inventory()
        if a.verb == "look":
            return self.look()
        if a.verb == "help":
            return text.HELP
        raise AssertionError(f"unknown verb {a.verb}")

    def _reveal(self, recep: str) -> str:
        if self.accessible(recep):
            self.seen.add(recep)
        return self.describe_receptacle(recep)

    def state(self) -> dict:
        """What decides every later reply and admissible command: where each object is (None: held), each
        object's states, which receptacles are open and where the agent stands. `seen` and `taken_from`
        are left out: only the expert reads them, and they record the path."""
        return {
            "at": self.at,
            "where": self.where,
            "opened": self.opened,
            "states": {thing: sorted(states) for thing, states in self.states.items() if states},
        }

    # ----- queries used by goals and the expert ----------------------------------------------

    def of_kind(self, kind: str) -> list[str]:
        return [t.name for t in self.room.things if t.kind == kind]

    def receptacles_of_kind(self, kind: str) -> list[str]:
        return [r.name for r in self.room.receptacles if r.kind == kind]

    def has_state(self, thing: str, state: str) -> bool:
        return state in self.states[thing]

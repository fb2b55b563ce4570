"""The oracle: ALFWorld's hand-coded expert strategy, played on our state.

Like the wheel's `agents/expert/handcoded_expert.py`, it works through sub-goals (find the object,
take it, go to the appliance and heat/cool/clean it, find the target receptacle, put it there; for
look_at_obj_in_light: find the object, take it, find the lamp, switch it on) and searches with
priors: first the receptacles whose class the compatibility table says can hold what it looks
for, in the original's order (the last listed first), opening closed ones, then the others. For the
goal's object, receptacles of the goal's own class come last of all: generated rooms never start a
goal object there (for pick_and_place that would be the goal already holding), so looking there
first only spends turns (in kitchens with many cabinets or drawers, up to a quarter of the search).

What it knows is what the agent has been shown: where objects are is read only from receptacles
whose inside was revealed during the episode (`World.seen`), so its trajectories are honest
demonstrations. It is stateless between turns (everything comes from the world), so it can take
over at any point of an episode, after any actions of the agent; holding the wrong object, it
first puts it back. Unlike the original it does not close what it opened (shorter plans) and does
not pick at random among equal choices. Every turn it returns `Thought: ...\\nAction: ...`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gymwire.env_servers.alfworld.generator import LAMP_HOSTS
from gymwire.env_servers.alfworld.goals import LOOK, TWO, Goal
from gymwire.env_servers.alfworld.world import World


@dataclass(frozen=True)
class Step:
    thought: str
    action: str

    def turn(self) -> str:
        return f"Thought: {self.thought}\nAction: {self.action}"


def _a(name: str) -> str:
    """`a mug`: the class part of an instance name with an article, for thoughts."""
    return "a " + name.split(" ")[0]


class Expert:
    def __init__(self, world: World, goal: Goal):
        self.world = world
        self.goal = goal
        self.obj = goal.obj.lower()
        room = world.room
        likely = [r.name for r in room.receptacles if goal.obj in room.can_contain.get(r.kind, ())]
        order = likely[::-1] + [r.name for r in room.receptacles if r.name not in likely][::-1]
        goal_class = {r.name for r in room.receptacles if goal.recep and r.kind == goal.recep}
        self.object_search = [r for r in order if r not in goal_class] + [r for r in order if r in goal_class]
        hosts = [r.name for r in room.receptacles if r.kind in LAMP_HOSTS]
        self.lamp_search = hosts[::-1] + [r.name for r in room.receptacles if r.name not in hosts][::-1]

    def next_step(self) -> Step | None:
        w, g = self.world, self.goal
        if g.satisfied(w):
            return None
        held = w.holding
        if held is not None and w.things[held].kind != g.obj:
            return self._put_back(held)
        if held is None:
            return self._fetch()
        if g.task_type == LOOK:
            return self._to_lamp(held)
        treatment = g.treatment
        if treatment is not None and not w.has_state(held, treatment[0]):
            return self._treat(held, treatment[1], treatment[2])
        return self._place(held)

    # ----- sub-goals --------------------------------------------------------------------------

    def _plan_sentence(self) -> str:
        g = self.goal
        if g.task_type == LOOK:
            lamp = _a(g.toggle.lower())
            return f"To solve the task, I need to find and take {_a(self.obj)}, then find and use {lamp}."
        middle = ""
        if g.treatment is not None:
            appliance = self.world.receptacles_of_kind(g.treatment[1])[0].split(" ")[0]
            middle = f", then {g.treatment[2]} it with {appliance}"
        count = "two" if g.task_type == TWO else "a"
        noun = self.obj if count == "a" else f"{self.obj}s"
        return f"To solve the task, I need to find and take {count} {noun}{middle}, then put it in {g.recep.lower()}."

    def _search(self, order: list[str], what: str) -> Step:
        w = self.world
        todo = [r for r in order if r not in w.seen]
        if not todo:  # everything was seen: cannot happen in a generated room; look again
            return Step(f"I have checked every place and found no {what}. Let me look around.", "look")
        if w.at in todo and not w.accessible(w.at):
            return Step(f"The {w.at} is closed. I will open it and look inside.", f"open {w.at}")
        target = todo[0]
        if not w.seen:
            thought = (
                f"{self._plan_sentence()} First I need to find {_a(what)}. "
                f"{_a(what).capitalize()} is more likely to appear in {self._likely_places(order)}. "
                f"I will check them one by one, starting with {target}."
            )
        else:
            thought = f"I have not found {_a(what)} yet. Next, I will check {target}."
        return Step(thought, f"go to {target}")

    def _likely_places(self, order: list[str]) -> str:
        kinds: list[str] = []
        for name in order[:8]:
            kind = name.split(" ")[0]
            if kind not in kinds:
                kinds.append(kind)
        return ", ".join(kinds[:5])

    def _reach(self, recep: str, why: str) -> Step | None:
        """Go to `recep` and open it if needed; None when already there with its inside reachable."""
        w = self.world
        if w.at != recep:
            return Step(why, f"go to {recep}")
        if not w.accessible(recep):
            return Step(f"The {recep} is closed. I will open it.", f"open {recep}")
        return None

    def _fetch(self) -> Step:
        w, g = self.world, self.goal
        candidates = [t for t in w.of_kind(g.obj) if w.where[t] is not None]
        if g.task_type == TWO:  # leave the one already in place
            candidates = [t for t in candidates if w.where[t] != self._pair_target()]
        # object -> the receptacle it was seen in
        known = {t: r for t in candidates if (r := w.where[t]) is not None and r in w.seen}
        if not known:
            return self._search(self.object_search, self.obj)
        rank = {r: i for i, r in enumerate(self.object_search)}
        here = [t for t, r in known.items() if r == w.at]
        thing = here[0] if here else min(known, key=lambda t: rank[known[t]])
        recep = known[thing]
        step = self._reach(recep, f"I saw {_a(self.obj)} ({thing}) in/on {recep}. I will go there and take it.")
        if step is not None:
            return step
        then = (
            "look for the lamp"
            if g.task_type == LOOK
            else (f"{g.treatment[2]} it" if g.treatment is not None else f"put it in/on {g.recep.lower()}")
        )
        return Step(
            f"Now I find {_a(self.obj)} ({thing}). Next, I need to take it and {then}.", f"take {thing} from {recep}"
        )

    def _pair_target(self) -> str | None:
        """For two objects: the receptacle of the goal's class that already holds one, if any."""
        w, g = self.world, self.goal
        for recep in w.receptacles_of_kind(g.recep):
            if any(w.where[t] == recep for t in w.of_kind(g.obj)):
                return recep
        return None

    def _treat(self, held: str, appliance_kind: str, verb: str) -> Step:
        w = self.world
        appliance = w.receptacles_of_kind(appliance_kind)[0]
        if w.at != appliance:
            thought = f"Now I take the {held}. Next, I need to go to {appliance} and {verb} it."
            return Step(thought, f"go to {appliance}")
        return Step(f"I am at {appliance}. I will {verb} the {held} with it.", f"{verb} {held} with {appliance}")

    def _place(self, held: str) -> Step:
        w, g = self.world, self.goal
        target = self._pair_target() if g.task_type == TWO else None  # the second joins the first
        if target is None:
            here = w.at if w.at is not None and w.receptacles[w.at].kind == g.recep else None
            target = here or w.receptacles_of_kind(g.recep)[-1]
        done = "" if g.treatment is None else f"Now I {g.treatment[2]} the {held}. "
        step = self._reach(target, f"{done}Next, I need to put it in/on {target}.")
        if step is not None:
            return step
        put = self.world.wording.put_command.format(o=held, r=target)
        return Step(f"I am at {target}. I will put the {held} in/on it.", put)

    def _to_lamp(self, held: str) -> Step:
        w, g = self.world, self.goal
        lamps = [lamp for lamp in w.of_kind(g.toggle) if w.where[lamp] in w.seen]
        here = [lamp for lamp in lamps if w.where[lamp] == w.at]
        if here:
            return Step(f"I am holding the {held} and the {here[0]} is here. I will turn it on.", f"use {here[0]}")
        if lamps:
            recep = w.where[lamps[0]]
            return Step(f"Now I take the {held}. I saw the {lamps[0]} on {recep}. I will go there.", f"go to {recep}")
        return self._search(self.lamp_search, g.toggle.lower())

    def _put_back(self, held: str) -> Step:
        w = self.world
        spec = w.things[held]
        here = w.receptacles[w.at].kind if w.at is not None else ""
        if w.at is not None and w.accessible(w.at) and spec.kind in w.room.can_contain.get(here, ()):
            put = w.wording.put_command.format(o=held, r=w.at)
            return Step(f"I do not need the {held}. I will put it down here.", put)
        origin = w.taken_from.get(held) or next(
            r.name for r in w.room.receptacles if spec.kind in w.room.can_contain.get(r.kind, ())
        )
        step = self._reach(origin, f"I do not need the {held}. I will put it back on/in {origin}.")
        assert step is not None, "the put-back above covers an open, compatible receptacle"
        return step

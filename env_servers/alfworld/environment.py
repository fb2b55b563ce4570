"""ALFWorld as a gymwire `Environment`: household tasks from text, on our simulator or the real games.

Generated tasks (default) run on our symbolic simulator (world.py) in rooms built from the ALFRED
scene layouts that the `alfworld` wheel ships (scenes.py, generator.py); the original games
(json_2.1.1 folders of `traj_data.json` + `game.tw-pddl`) run through `alfworld` + `textworld` when
`data=PATH` is given (real_data.py). Reward 1, and the episode ends, when the goal holds.

Signals in `info`: `won`. No `committed`/`verified` (the SDK's commit signals): no action stakes the
task, since a wrong placement can be undone and the episode ends only when the goal holds, so a
failure here is a turn limit, never a commit without a check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from gymwire.env_servers.alfworld.expert import Expert
from gymwire.env_servers.alfworld.generator import NoSuchTask, cached
from gymwire.env_servers.alfworld.goals import Goal
from gymwire.env_servers.alfworld.parser import canonical, extract_action
from gymwire.env_servers.alfworld.tasks import (
    BASE_MAX_TURNS,
    DEFAULT_TIERS,
    MAX_TURNS_LIMIT,
    GeneratedTasks,
    parse_generated_id,
)
from gymwire.env_servers.alfworld.text import Wording, wording_named
from gymwire.env_servers.alfworld.world import Room, World
from gymwire.env_servers.sdk import EnvDescription, Environment, Episode, StepOutcome, Task, TaskCatalogue, UnknownTask
from gymwire.env_servers.sdk.state_keys import hash_state

if TYPE_CHECKING:
    from gymwire.env_servers.alfworld.real_data import RealGames

VERSION = "1.0.0"

INSTRUCTION = """\
You are a household robot. The first message describes the room (the furniture and appliances, \
which are receptacles such as cabinet 1 or fridge 1) and gives your task. Objects (such as mug 2 or \
apple 1) lie in or on receptacles; you see what a receptacle holds when you go to it, but a closed \
one (cabinet, drawer, fridge, microwave, safe) must be opened first. You can carry one object at a time.

Actions (use the exact names from the observations):
- go to <receptacle>, e.g. go to countertop 1
- open <receptacle> / close <receptacle>
- take <object> from <receptacle>, e.g. take mug 2 from cabinet 3
- put <object> in/on <receptacle>, e.g. put mug 2 in/on coffeemachine 1 (also accepted: move <object> to <receptacle>)
- heat <object> with <microwave>, cool <object> with <fridge>, clean <object> with <sinkbasin>: \
hold the object and stand at the appliance
- use <lamp>: switch on a desk lamp or floor lamp where you stand
- slice <object> with <knife>: while holding a knife
- examine <receptacle> (where you stand) or examine <object> (in your hand), inventory, look

An action that is not possible right now changes nothing and is answered "Nothing happens." \
To look at an object under a lamp, hold the object and switch on the lamp where you stand.

Each turn, think briefly and then give exactly one action, in the form:
Thought: <your reasoning>
Action: <one action>

The task ends when its goal holds."""

ACTION_GRAMMAR = (
    "One action per turn, after 'Action:' (text before it is ignored; first line, case-insensitive, trailing "
    "period ignored): 'go to <recep>', 'open <recep>', 'close <recep>', 'take <obj> from <recep>', "
    "'put <obj> in/on <recep>' (also 'move <obj> to <recep>'), 'heat <obj> with <microwave>', "
    "'cool <obj> with <fridge>', 'clean <obj> with <sinkbasin>', 'use <lamp>', 'slice <obj> with <knife>', "
    "'examine <recep>' (where you stand), 'examine <obj>' (held), 'inventory', 'look'. "
    "Names as shown, e.g. 'cabinet 3', 'mug 2'. Anything not possible now answers 'Nothing happens.'"
)


class ALFWorldEpisode(Episode):
    """One generated task on our simulator."""

    def __init__(self, room: Room, goal: Goal, style: Wording):
        self.world = World(room, style)
        self.goal = goal
        self.expert = Expert(self.world, goal)
        self.won = False

    def reset(self) -> str:
        return self.world.wording.intro(self.world.describe_room(), self.goal.text)

    def step(self, text: str) -> StepOutcome:
        action = canonical(extract_action(text), self.world.wording)
        reply, valid = self.world.act(action)
        self.won = self.won or (valid and self.goal.satisfied(self.world))
        return StepOutcome(
            observation=reply,
            reward=1.0 if self.won else 0.0,
            terminated=self.won,
            success=self.won,
            action_valid=valid,
            parsed_action=action,
            info={"won": self.won},
        )

    def valid_actions(self) -> list[str]:
        return self.world.commands()

    def state_key(self) -> str:
        return hash_state({**self.world.state(), "won": self.won})

    def expert_action(self) -> str | None:
        if self.won:
            return None
        step = self.expert.next_step()
        return step.turn() if step is not None else None


class ALFWorldEnvironment(Environment):
    """ALFWorld over generated rooms, or over the original games when `data` is given.

    data: a folder with the original games (ALFWORLD_DATA, its `json_2.1.1`, or one split folder of
        it); needs the `alfworld` and `textworld` packages (see real_data.py). Without it: generated.
    wording: `agentgym` (default; ALFWorld 0.3 text as AgentGym serves it) or `0.4` (see text.py).
    tiers: tier name -> task types (default easy = pick_and_place_simple, hard = the other five).
    test_scenes: scene numbers of the test split (default: ALFRED's held-out scenes, from the wheel).
    per_scene: listed seeds per (scene, task type); other seeds resolve too.
    """

    def __init__(
        self,
        data: str | Path | None = None,
        *,
        wording: str = "agentgym",
        tiers: Mapping[str, Iterable[str]] = DEFAULT_TIERS,
        test_scenes: Iterable[int] | None = None,
        per_scene: int = 5,
    ):
        self.style = wording_named(wording)
        self.real: RealGames | None = None
        if data is not None:
            from gymwire.env_servers.alfworld.real_data import RealGames

            self.real = RealGames(data, tiers)
            self.source = f"{len(self.real)} original ALFWorld games from {self.real.root}"
            self._catalogue = TaskCatalogue(self.real.listed(), resolver=self.real.resolve)
        else:
            self.generated = GeneratedTasks(tiers, test_scenes, per_scene)
            self.source = "rooms generated from the 120 ALFRED scene layouts"
            self._catalogue = TaskCatalogue(self.generated.listed(), resolver=self.generated.resolve)

    def describe(self) -> EnvDescription:
        return EnvDescription(
            name="alfworld",
            version=VERSION,
            description=(
                "ALFWorld: text household tasks (pick and place, clean, heat, cool, two objects, look under a lamp) "
                f"with ALFWorld's rules and wording ({self.style.name}); served over {self.source}. "
                "Reward 1 when the goal holds."
            ),
            instruction=INSTRUCTION,
            action_grammar=ACTION_GRAMMAR,
            provides_valid_actions=True,
            provides_expert=True,
            default_max_turns=BASE_MAX_TURNS,  # a task stating its own limit gets that (tasks.py)
            max_turns_limit=MAX_TURNS_LIMIT,
        )

    def catalogue(self) -> TaskCatalogue:
        return self._catalogue

    def start(self, task: Task) -> Episode:
        if self.real is not None:
            return self.real.start(task.id, self.style)
        gen = parse_generated_id(task.id)
        if gen is None:
            raise UnknownTask(task.id)
        try:
            made = cached(gen.task_type, gen.scene, gen.seed)
        except NoSuchTask as exc:
            raise UnknownTask(task.id) from exc
        return ALFWorldEpisode(made.room, made.goal, self.style)

    def close(self) -> None:
        if self.real is not None:
            self.real.close()

"""The agent's 7x7 egocentric view, as objects with names and as AgentGym-style text.

Objects are named `<color> <type>` (doors `<color> <open|closed|locked> door`) and numbered per name,
nearest first (`red ball 1`, `red ball 2`): the same label is what the action grammar refers to, so
the view is computed once per state and shared by the text, the action menu and the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from minigrid.core.world_object import Door, WorldObj
from minigrid.minigrid_env import MiniGridEnv

from gymwire.env_servers.babyai.pathing import walkable

# Things worth naming; walls are described once, as "walls around you" and what you are facing.
LISTED_TYPES = frozenset({"door", "key", "ball", "box", "goal", "lava"})
NOTHING_IN_SIGHT = "You cannot see any objects within sight."
WALLS = "The room has walls around you."


def object_name(obj: WorldObj) -> str:
    """The name the text and the grammar use for an object, without its number."""
    if obj.type == "door":
        door = cast(Door, obj)  # minigrid tags every object with its class's type name
        state = "open" if door.is_open else "locked" if door.is_locked else "closed"
        return f"{obj.color} {state} door"
    return f"{obj.color} {obj.type}"


@dataclass(frozen=True)
class SeenObject:
    """One visible object, with its position relative to the agent."""

    name: str
    number: int
    pos: tuple[int, int]
    obj: WorldObj
    ahead: int  # steps in front of the agent (0 = the agent's row)
    right: int  # steps to the right (negative = left)

    @property
    def label(self) -> str:
        return f"{self.name} {self.number}"

    def sentence(self) -> str:
        if self.right == 0:
            where = f"right in front of you {self.ahead} steps away"
        else:
            side = "right" if self.right > 0 else "left"
            where = f"{self.ahead} steps in front of you and {abs(self.right)} steps to your {side}"
        return f"There is a {self.label} {where}."


@dataclass(frozen=True)
class View:
    """What the agent sees now: named objects (nearest first) and the world cells in sight."""

    objects: tuple[SeenObject, ...]
    visible: np.ndarray  # bool mask over world cells, True where the agent sees the cell now

    def find(self, label: str) -> SeenObject | None:
        return next((o for o in self.objects if o.label == label), None)

    def at(self, pos: tuple[int, int]) -> SeenObject | None:
        return next((o for o in self.objects if o.pos == pos), None)


def observe(env: MiniGridEnv) -> View:
    """Scan the agent's view (occlusion included) into named objects and a world visibility mask."""
    _, vis_mask = env.gen_obs_grid()
    size = env.agent_view_size
    agent = np.array(env.agent_pos)
    fwd, right = env.dir_vec, env.right_vec
    far_left = agent + fwd * (size - 1) - right * (size // 2)
    visible = np.zeros((env.width, env.height), dtype=bool)
    found: list[tuple[int, int, int, tuple[int, int], WorldObj]] = []
    for vj in range(size):
        for vi in range(size):
            if not vis_mask[vi, vj]:
                continue
            x, y = (int(c) for c in far_left - fwd * vj + right * vi)
            if not (0 <= x < env.width and 0 <= y < env.height):
                continue
            visible[x, y] = True
            ahead, rightward = size - 1 - vj, vi - size // 2
            obj = env.grid.get(x, y)
            if (ahead, rightward) != (0, 0) and obj is not None and obj.type in LISTED_TYPES:
                found.append((ahead + abs(rightward), ahead, rightward, (x, y), obj))
    found.sort(key=lambda item: item[:3])
    counts: dict[str, int] = {}
    objects = []
    for _, ahead, rightward, pos, obj in found:
        name = object_name(obj)
        counts[name] = counts.get(name, 0) + 1
        objects.append(SeenObject(name, counts[name], pos, obj, ahead, rightward))
    return View(tuple(objects), visible)


def facing_sentence(env: MiniGridEnv, view: View) -> str:
    """`You are facing a wall 3 steps away.`: the first thing straight ahead that blocks walking."""
    x, y = env.agent_pos
    dx, dy = env.dir_vec
    for steps in range(1, env.agent_view_size):
        cx, cy = x + dx * steps, y + dy * steps
        if not (0 <= cx < env.width and 0 <= cy < env.height) or not view.visible[cx, cy]:
            return ""
        cell = env.grid.get(cx, cy)
        if not walkable(cell):
            assert cell is not None  # empty cells are walkable
            what = "wall" if cell.type == "wall" else object_name(cell)
            return f"You are facing a {what} {steps} steps away."
    return ""


def carrying_sentence(env: MiniGridEnv) -> str:
    if env.carrying is None:
        return "You are not carrying anything."
    return f"You are carrying a {env.carrying.color} {env.carrying.type}."


def describe(env: MiniGridEnv, view: View) -> str:
    """The state paragraph: visible objects nearest first, walls and facing, what is carried."""
    if view.objects:
        seen = "In front of you in this room, you can see several objects: " + " ".join(
            o.sentence() for o in view.objects
        )
    else:
        seen = NOTHING_IN_SIGHT
    parts = [seen, WALLS, facing_sentence(env, view), carrying_sentence(env)]
    return " ".join(p for p in parts if p)

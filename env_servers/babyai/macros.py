"""The action grammar: parse a model's turn, and list what each action would do right now.

Every state has a menu: the valid actions (each with its primitive minigrid plan, shortest path over
the seen grid) and, for actions that are understood but impossible now, the reply explaining why.
Valid actions come from the same menu, so the listed actions and the accepted ones never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from minigrid.core.world_object import Door
from minigrid.minigrid_env import MiniGridEnv

from gymwire.env_servers.babyai.pathing import (
    DONE,
    DROP,
    FORWARD,
    LEFT,
    PICKUP,
    RIGHT,
    TOGGLE,
    front_of,
    plan_to_face,
    plan_to_stand_on,
    walkable,
)
from gymwire.env_servers.babyai.text_view import View
from gymwire.env_servers.sdk.actions import extract_action as sdk_extract_action

CHECK = "check available actions"
NOT_RECOGNIZED = "The action is not recognized. Please check valid actions."
BARRIER = "There is a barrier in front of you, you can't move forward."
NOTHING_TO_DROP = "You cannot drop the object, as you are not carrying anything."
DROP_BLOCKED = "You cannot drop the object, as there is already an object in front of you."
NOTHING_TO_TOGGLE = "There is nothing in front of you that you can toggle."
NO_GOAL = "There is no goal in sight."

_OBJECT_ACTION = re.compile(r"^(?:go to|pickup|(?:toggle and )?go through) (?P<label>[a-z]+(?: [a-z]+)* \d+)$")


def extract_action(text: str) -> str:
    """The action in a raw turn such as `Thought: ... Action: go to red ball 1` (the SDK's convention).

    Lower-cased with single spaces, stripped of quotes, markdown emphasis and trailing punctuation;
    `pick up` is read as `pickup`. The result is what the episode echoes as the parsed action.
    """
    action = sdk_extract_action(text, wrappers="\"'`*", trailing=".!?,;:")
    return re.sub(r"^pick up ", "pickup ", action)


@dataclass
class Plan:
    """Primitive actions for one macro; `step_beyond` adds one forward step past a door if it is free."""

    primitives: list[int]
    step_beyond: bool = False


@dataclass
class Menu:
    """The valid actions now (in display order) and replies for understood-but-impossible ones."""

    plans: dict[str, Plan] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    labels: frozenset[str] = frozenset()  # the objects in view, e.g. "red ball 1"

    def reply_for_invalid(self, action: str) -> str:
        if action in self.errors:
            return self.errors[action]
        match = _OBJECT_ACTION.match(action)
        if match and match["label"] not in self.labels:
            return f"There is no {match['label']} in sight. Please check valid actions."
        return NOT_RECOGNIZED


def no_path(verb: str, label: str) -> str:
    return f"You cannot {verb} {label}, as there is no path leading to it."


def build_menu(env: MiniGridEnv, view: View, known: np.ndarray) -> Menu:
    """Every action the grammar can express for the objects in view, valid or with its error."""
    grid, carrying = env.grid, env.carrying
    x, y = (int(c) for c in env.agent_pos)
    pose = (x, y, int(env.agent_dir))
    front = grid.get(*front_of(*pose))
    menu = Menu(labels=frozenset(seen.label for seen in view.objects))
    plans, errors = menu.plans, menu.errors

    plans["turn left"] = Plan([LEFT])
    plans["turn right"] = Plan([RIGHT])
    if front is None or front.can_overlap():
        plans["move forward"] = Plan([FORWARD])
    else:
        errors["move forward"] = BARRIER

    for seen in view.objects:
        if not seen.obj.can_pickup():
            continue
        action = f"pickup {seen.label}"
        if carrying is not None:
            errors[action] = f"You cannot pickup {seen.label}, as you are already carrying something."
            continue
        path = plan_to_face(grid, known, pose, seen.pos)
        if path is None:
            errors[action] = no_path("pickup", seen.label)
        else:
            plans[action] = Plan([*path, PICKUP])

    if carrying is None:
        errors["drop"] = NOTHING_TO_DROP
    elif front is not None:
        errors["drop"] = DROP_BLOCKED
    else:
        plans["drop"] = Plan([DROP])

    for seen in view.objects:
        if seen.obj.type != "door":
            continue
        door = cast(Door, seen.obj)  # minigrid tags every object with its class's type name
        through, toggle_through = f"go through {seen.label}", f"toggle and go through {seen.label}"
        if door.is_open:
            path = plan_to_stand_on(grid, known, pose, seen.pos)
            if path is None:
                errors[through] = no_path("go through", seen.label)
            else:
                plans[through] = Plan(path, step_beyond=True)
            continue
        if door.is_locked:
            errors[through] = f"You cannot go through {seen.label}, as it is locked. You need a {door.color} key."
            if carrying is None or carrying.type != "key":
                errors[toggle_through] = (
                    f"You cannot toggle and go through {seen.label}, as you are not carrying a key."
                )
                continue
            if carrying.color != door.color:
                errors[toggle_through] = (
                    f"You cannot toggle and go through {seen.label}, as the color of the key you are carrying "
                    "does not match the color of door."
                )
                continue
        else:
            errors[through] = f"You cannot go through {seen.label}, as it is closed. You should toggle it first."
        path = plan_to_face(grid, known, pose, seen.pos)
        if path is None:
            errors[toggle_through] = no_path("toggle and go through", seen.label)
        else:
            plans[toggle_through] = Plan([*path, TOGGLE, FORWARD], step_beyond=True)

    if front is not None and front.type in ("door", "box"):
        if (
            front.type == "door"
            and cast(Door, front).is_locked
            and not (carrying is not None and carrying.type == "key" and carrying.color == front.color)
        ):
            errors["toggle"] = (
                f"You cannot toggle the {front.color} locked door, as you are not carrying a {front.color} key."
            )
        else:
            plans["toggle"] = Plan([TOGGLE])
    else:
        errors["toggle"] = NOTHING_TO_TOGGLE

    goals = [seen for seen in view.objects if seen.obj.type == "goal"]
    errors["go to goal"] = NO_GOAL
    for seen in goals:
        path = plan_to_stand_on(grid, known, pose, seen.pos)
        if path is not None:
            plans["go to goal"] = Plan(path)
            del errors["go to goal"]
            break
        errors["go to goal"] = "You cannot go to the goal, as there is no path leading to it."

    for seen in view.objects:
        if seen.obj.type == "goal":
            continue
        action = f"go to {seen.label}"
        path = plan_to_face(grid, known, pose, seen.pos)
        if path is None:
            errors[action] = no_path("go to", seen.label)
        else:
            plans[action] = Plan(path)

    plans[CHECK] = Plan([])
    return menu


StepFn = Callable[[int], tuple[float, bool, bool]]  # primitive -> (reward, terminated, truncated)


@dataclass
class MacroResult:
    reward: float = 0.0
    steps: int = 0
    terminated: bool = False
    truncated: bool = False


def execute(env: MiniGridEnv, plan: Plan, step: StepFn) -> MacroResult:
    """Run a macro's primitives through `step` until done, blocked, or the minigrid episode ends.

    An empty plan (e.g. `go to` an object already faced) still takes one no-op `done` step, so that
    minigrid checks the goal. `step` does the bookkeeping (the episode's view, the oracle's check).
    """
    result = MacroResult()

    def take(primitive: int) -> bool:
        """One primitive; False when the macro must stop (episode over, or a blocked forward step)."""
        before = tuple(env.agent_pos)
        reward, result.terminated, result.truncated = step(primitive)
        result.reward += reward
        result.steps += 1
        if result.terminated or result.truncated:
            return False
        return primitive != FORWARD or tuple(env.agent_pos) != before

    for primitive in plan.primitives or [DONE]:
        if not take(primitive):
            return result
    if plan.step_beyond:
        x, y = (int(c) for c in env.agent_pos)
        if walkable(env.grid.get(*front_of(x, y, int(env.agent_dir)))):
            take(FORWARD)
    return result

"""Shortest primitive-action paths over the part of the grid the agent has seen.

Macros such as `go to red ball 1` expand into minigrid's primitive actions. Planning only over
cells the agent has already seen keeps the agent from using knowledge it could not have; since
only the agent changes a BabyAI world, the true contents of a seen cell are what it remembers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
from minigrid.core.grid import Grid
from minigrid.core.world_object import WorldObj

# minigrid's primitive actions (MiniGridEnv.Actions) and direction vectors (DIR_TO_VEC order).
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
DIRECTIONS: tuple[tuple[int, int], ...] = ((1, 0), (0, 1), (-1, 0), (0, -1))

Pose = tuple[int, int, int]  # x, y, direction index


def walkable(cell: WorldObj | None) -> bool:
    """Whether the agent may step onto a cell; lava is walkable in minigrid but never planned through."""
    return cell is None or (cell.can_overlap() and cell.type != "lava")


def front_of(x: int, y: int, direction: int) -> tuple[int, int]:
    dx, dy = DIRECTIONS[direction]
    return x + dx, y + dy


def _successor(grid: Grid, known: np.ndarray, pose: Pose, action: int) -> Pose | None:
    x, y, d = pose
    if action == LEFT:
        return x, y, (d - 1) % 4
    if action == RIGHT:
        return x, y, (d + 1) % 4
    nx, ny = front_of(x, y, d)
    if not (0 <= nx < grid.width and 0 <= ny < grid.height) or not known[nx, ny]:
        return None
    return (nx, ny, d) if walkable(grid.get(nx, ny)) else None


def plan(grid: Grid, known: np.ndarray, start: Pose, reached: Callable[[Pose], bool]) -> list[int] | None:
    """Fewest primitive steps from `start` to a pose satisfying `reached`, or None.

    Breadth-first over (x, y, direction); trying forward before turns makes ties prefer straight lines,
    and a fixed order makes every plan deterministic.
    """
    if reached(start):
        return []
    parents: dict[Pose, tuple[Pose, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        pose = queue.popleft()
        for action in (FORWARD, LEFT, RIGHT):
            nxt = _successor(grid, known, pose, action)
            if nxt is None or nxt in parents:
                continue
            parents[nxt] = (pose, action)
            if reached(nxt):
                actions: list[int] = []
                link = parents[nxt]
                while link is not None:
                    prev, act = link
                    actions.append(act)
                    link = parents[prev]
                return actions[::-1]
            queue.append(nxt)
    return None


def plan_to_face(grid: Grid, known: np.ndarray, start: Pose, target: tuple[int, int]) -> list[int] | None:
    """Path to a pose facing `target` (next to it), as needed to pick up, toggle or reach an object."""
    return plan(grid, known, start, lambda p: front_of(*p) == target)


def plan_to_stand_on(grid: Grid, known: np.ndarray, start: Pose, target: tuple[int, int]) -> list[int] | None:
    """Path to stand on `target` (an open door or the goal square)."""
    return plan(grid, known, start, lambda p: (p[0], p[1]) == target)

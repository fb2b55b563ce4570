"""What a BabyAI state key holds: the world, what the agent has seen, and the mission's progress.

The grid's contents (objects, doors open, closed or locked, what a box holds), the agent's cell and
direction, what it carries, the cells it has seen (macros plan paths over seen cells only, so they
change what it can do) and how far a sequenced mission ("... then ...", "... after you ...") has
got. minigrid's step counter is left out although the reward discounts by it: it counts the path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from minigrid.core.world_object import WorldObj
from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel
from minigrid.envs.babyai.core.verifier import Instr, SeqInstr


def _thing(obj: WorldObj | None) -> list[Any] | None:
    if obj is None:
        return None
    return [obj.type, obj.color, _thing(obj.contains)]  # a box opens into what it holds


def _progress(instr: Instr) -> list[Any]:
    """The parts of a compound instruction that are done, as minigrid's verifiers record them."""
    if isinstance(instr, SeqInstr):
        done = [getattr(instr, part, False) == "success" for part in ("a_done", "b_done")]
        return [*done, _progress(instr.instr_a), _progress(instr.instr_b)]
    return [bool(getattr(instr, "lastStepMatch", False))]  # set only with minigrid's "done" actions


def world_state(env: RoomGridLevel, known: np.ndarray) -> dict[str, Any]:
    grid = env.grid
    contents: list[list[Any]] = []  # what boxes hold: the grid's encoding shows only the box
    for cy in range(grid.height):
        for cx in range(grid.width):
            cell = grid.get(cx, cy)
            if cell is not None and cell.contains is not None:
                contents.append([cx, cy, _thing(cell.contains)])
    x, y = (int(c) for c in env.agent_pos)
    return {
        "grid": grid.encode().tobytes(),  # each cell's type, colour and door state
        "contents": contents,
        "agent": [x, y, int(env.agent_dir)],
        "carrying": _thing(env.carrying),
        "seen": np.packbits(known).tobytes(),
        # Each level's gen_mission sets `instrs`; minigrid does not declare it on RoomGridLevel.
        "mission": _progress(env.instrs),  # type: ignore[attr-defined]
    }

"""Write a generated task as an ALFWorld game folder (`traj_data.json` + `game.tw-pddl`).

The folder has the layout of ALFWorld's `json_2.1.1/<split>/<task>/<trial>/`, with the wheel's PDDL
domain and grammar, a PDDL problem describing our room, and the goal from the wheel's goal library,
so ALFWorld's own engine (TextWorld's PDDL backend + ALFWorld's demangler and hand-coded expert) can
play it. Uses: checking our simulator against the original engine on the same room (the tests do),
and handing generated rooms to tools that read ALFWorld games.

`version="0.3"` undoes ALFWorld's json 2.1.1 -> 2.1.2 patch (the 0.3-era game files AgentGym serves):
`put {o} in/on {r}`, `You put the ... in/on the ...`, `You arrive at {lend.name}.`, and no `help`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from gymwire.env_servers.alfworld.assets import load_tables
from gymwire.env_servers.alfworld.generator import GeneratedTask
from gymwire.env_servers.alfworld.names import mangle
from gymwire.env_servers.alfworld.world import KNIVES

START = "loc_bar_start"
TO_03 = (
    ("You arrive at {r.name}.", "You arrive at {lend.name}."),
    ("move {o} to {r}", "put {o} in/on {r}"),
    ("You move the {o.name} to the {r.name}.", "You put the {o.name} in/on the {r.name}."),
)


def game_logic(version: str) -> tuple[str, str]:
    """(domain, grammar) of the wheel, in the 0.4 form or turned back into 0.3's."""
    tables = load_tables()
    domain, grammar = tables.domain_pddl, tables.grammar_twl2
    if version == "0.4":
        return domain, grammar
    if version != "0.3":
        raise ValueError(f"version must be 0.3 or 0.4, got {version!r}")
    for new, old in TO_03:
        if new not in grammar:
            raise RuntimeError(f"the installed grammar lacks {new!r}; cannot rebuild the 0.3 grammar")
        grammar = grammar.replace(new, old)
    grammar = re.sub(r"\naction help \{.*?\n\}\n", "\n", grammar, flags=re.DOTALL)
    domain = re.sub(r"\n\(:action help\b.*?\n\)\n", "\n", domain, flags=re.DOTALL)
    return domain, grammar


def problem_pddl(task: GeneratedTask) -> str:
    tables = load_tables()
    room, goal = task.room, task.goal
    pid = {name: mangle(thor_id) for name, thor_id in room.ids.items()}
    loc = {r.name: f"loc_bar_{i}_bar_0_bar_0_bar_0" for i, r in enumerate(room.receptacles)}
    otypes = sorted({t.kind for t in room.things} | KNIVES | {goal.obj} | ({goal.toggle} if goal.toggle else set()))
    rtypes = sorted(tables.static_receptacles)
    objects = ["agent1 - agent", f"{START} - location"]
    objects += [f"{k}Type - otype" for k in otypes] + [f"{k}Type - rtype" for k in rtypes]
    objects += [f"{pid[r.name]} - receptacle" for r in room.receptacles]
    objects += [f"{pid[t.name]} - object" for t in room.things]
    objects += [f"{loc[r.name]} - location" for r in room.receptacles]
    init = [f"(atLocation agent1 {START})"]
    for r in room.receptacles:
        init += [f"(receptacleType {pid[r.name]} {r.kind}Type)", f"(receptacleAtLocation {pid[r.name]} {loc[r.name]})"]
        if r.openable:
            init.append(f"(openable {pid[r.name]})")
    where = dict(room.placement)
    for t in room.things:
        o, recep = pid[t.name], where[t.name]
        init += [
            f"(objectType {o} {t.kind}Type)",
            f"(inReceptacle {o} {pid[recep]})",
            f"(objectAtLocation {o} {loc[recep]})",
        ]
        flags = {
            "pickupable": t.pickupable,
            "heatable": t.heatable,
            "coolable": t.coolable,
            "cleanable": t.cleanable,
            "toggleable": t.toggleable,
            "sliceable": t.sliceable,
            "isReceptacleObject": t.receptacle_object,
        }
        init += [f"({flag} {o})" for flag, on in flags.items() if on]
    kinds = sorted({r.kind for r in room.receptacles})
    init += [f"(canContain {rk}Type {ok}Type)" for rk in kinds for ok in otypes if ok in room.can_contain.get(rk, ())]
    goal_text = tables.goal_pddl[goal.task_type].format(obj=goal.obj, recep=goal.recep, toggle=goal.toggle, mrecep="")
    goal_text = goal_text.replace(" # ", " - ")
    lines = ["(define (problem gymwire)", "    (:domain alfred)", "    (:objects"]
    lines += [f"        {x}" for x in objects] + ["    )", "    (:init"] + [f"        {x}" for x in init] + ["    )"]
    return "\n".join(lines) + "\n" + goal_text


def export_game(
    task: GeneratedTask, folder: str | Path, *, version: str = "0.3", walkthrough: list[str] | None = None
) -> Path:
    """Write the game into `folder`; returns the path of its `game.tw-pddl`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    domain, grammar = game_logic(version)
    goal = task.goal
    game = {
        "pddl_domain": domain,
        "grammar": grammar.replace("UNKNOWN GOAL", goal.text),
        "pddl_problem": problem_pddl(task),
        "solvable": True,
        "walkthrough": walkthrough,
    }
    traj = {
        "task_type": goal.task_type,
        "task_id": f"gymwire_{goal.task_type}_{task.scene}_{task.seed}",
        "scene": {"floor_plan": f"FloorPlan{task.scene}", "scene_num": task.scene},
        "pddl_params": {
            "object_target": goal.obj,
            "parent_target": goal.recep,
            "toggle_target": goal.toggle,
            "mrecep_target": "",
            "object_sliced": False,
        },
        "turk_annotations": {"anns": [{"task_desc": goal.text}]},
    }
    (folder / "traj_data.json").write_text(json.dumps(traj, indent=1))
    path = folder / "game.tw-pddl"
    path.write_text(json.dumps(game))
    return path

"""The original ALFWorld games, played by ALFWorld's own engine (`alfworld` + `textworld[pddl]`).

Data: what `alfworld-download` puts in `$ALFWORLD_DATA`: `json_2.1.1/<split>/<task>/<trial>/` with
`traj_data.json` and `game.tw-pddl`. `data=` may name `$ALFWORLD_DATA`, its `json_2.1.1`, or one split
folder. Discovery follows ALFWorld's `AlfredTWEnv.collect_game_files`: every folder holding both
files, skipping `movable` and `Sliced` tasks, task types outside the six, and games not marked
solvable (`"solvable": true` in `game.tw-pddl`).

Ids are the original trial paths under `json_2.1.1`, e.g.
`valid_unseen/pick_and_place_simple-Pencil-None-Shelf-308/trial_T20190908_121952_610012`; the split
is the first part (`train`, `valid_seen` = ALFWorld's in-distribution eval, `valid_unseen` = its
out-of-distribution eval). Category = task type (from the folder name, ALFRED's
`<type>-<object>-<mrecep>-<receptacle>-<scene>`), tiers as for generated tasks, `expert_turns` = the
length of the game's stored walkthrough when it has one.

Playing: TextWorld's PDDL environment with ALFWorld's `AlfredDemangler` (names like `cabinet 3`,
no shuffling) and `AlfredInfos`, as `AlfredTWEnv.init_env` builds it; the game's own grammar decides
the wording (0.3 files: `put X in/on Y`; 0.4-patched files: `move X to Y`); placing commands in
either form are sent in the form the game admits. The `agentgym` wording then post-processes as
AgentGym does (banner dropped, one newline before the task, `You arrive at loc <k>. ` cut); `0.4`
only drops the banner. The expert is ALFWorld's `HandCodedTWAgent`, fed every step as ALFWorld's
`AlfredExpert` wrapper feeds it (its first proposal is `look`), with placing commands translated to
the 0.4 form it was written for.

Each engine loads its own copy of Fast Downward's library, so engines are pooled and reused across
episodes (an episode returns its engine when it is garbage-collected).
"""

from __future__ import annotations

import json
import os
import re
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gymwire.env_servers.alfworld.goals import TASK_TYPES
from gymwire.env_servers.alfworld.parser import extract_action
from gymwire.env_servers.alfworld.tasks import tier_table
from gymwire.env_servers.alfworld.text import NOTHING_HAPPENS, Wording
from gymwire.env_servers.sdk import Episode, StepOutcome, Task, UnknownTask, hash_state

SPLITS = ("train", "valid_seen", "valid_unseen")
_SOLVABLE = re.compile(r'"solvable"\s*:\s*(true|false|null)')
_WALKTHROUGH = re.compile(r'"walkthrough"\s*:\s*')
_ARRIVE_LOC = re.compile(r"^You arrive at loc \d+\. ")
# Facts that record the path, so no part of the state: ALFWorld's domain notes what was looked into,
# examined or ever held (no precondition or goal reads them), and TextWorld keeps a `not_<fact>` for each
# fact that once held and no longer does (the agent's every former location).
_HISTORY_FACTS = frozenset({"checked", "examined", "wasinreceptacle"})
_PLACE = re.compile(r"(?:put (\S+ \d+) (?:in/on|in|on|into) (\S+ \d+)|move (\S+ \d+) to (\S+ \d+))")

ENGINE_MISSING = (
    "playing the original ALFWorld games needs ALFWorld's engine: "
    "pip install 'alfworld>=0.4.2' 'textworld[pddl]>=1.6.1' (textworld imports jericho; "
    "fast_downward_textworld builds Fast Downward with cmake and a C++ compiler). Missing: {}"
)


def require_engine() -> None:
    """Raise a clear error naming every missing package of the real-game path."""
    import importlib.util

    missing = [
        pkg
        for mod, pkg in (
            ("alfworld", "alfworld"),
            ("textworld", "textworld"),
            ("jericho", "jericho"),
            ("fast_downward", "fast_downward_textworld"),
            ("tatsu", "tatsu"),
        )
        if importlib.util.find_spec(mod) is None
    ]
    if missing:
        raise RuntimeError(ENGINE_MISSING.format(", ".join(missing)))


@dataclass(frozen=True)
class RealGame:
    task_id: str
    split: str
    task_type: str
    game_file: Path
    scene: str
    params: tuple[str, str, str]  # object, mrecep, receptacle (or lamp) as in the folder name
    walkthrough_turns: int | None


def games_root(data: Path) -> Path:
    data = data.expanduser()
    if not data.is_dir():
        raise FileNotFoundError(f"ALFWorld data folder not found: {data}")
    return data / "json_2.1.1" if (data / "json_2.1.1").is_dir() else data


def _walkthrough_turns(raw: str) -> int | None:
    m = _WALKTHROUGH.search(raw)
    if not m:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(raw, m.end())
    except ValueError:
        return None
    return len(value) if isinstance(value, list) else None


def discover(root: Path) -> list[RealGame]:
    prefix = (root.name,) if root.name in SPLITS else ()
    games = []
    for traj in sorted(root.rglob("traj_data.json")):
        folder = traj.parent
        rel = prefix + folder.relative_to(root).parts
        game_file = folder / "game.tw-pddl"
        if "movable" in str(folder) or "Sliced" in str(folder) or not game_file.is_file() or len(rel) < 2:
            continue
        task_dir = rel[-2].split("-")
        task_type = task_dir[0]
        if task_type not in TASK_TYPES:
            continue
        raw = game_file.read_text()
        m = _SOLVABLE.search(raw)
        if not m or m.group(1) != "true":
            continue
        obj, mrecep, recep = (task_dir[1:4] + ["", "", ""])[:3]
        params = (obj, mrecep, recep)
        scene = f"FloorPlan{task_dir[4]}" if len(task_dir) > 4 else ""
        split = rel[0] if rel[0] in SPLITS else "train"
        games.append(RealGame("/".join(rel), split, task_type, game_file, scene, params, _walkthrough_turns(raw)))
    return games


class _EnginePool:
    """Reusable ALFWorld engines (each one holds its own copy of Fast Downward)."""

    def __init__(self) -> None:
        self._free: list[Any] = []
        self._lock = threading.Lock()

    def take(self) -> Any:
        with self._lock:
            if self._free:
                return self._free.pop()
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
        from textworld.envs.wrappers import GenericEnvironment

        infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=True)
        return AlfredInfos(AlfredDemangler(shuffle=False)(GenericEnvironment(infos)))

    def give(self, engine: Any) -> None:
        with self._lock:
            self._free.append(engine)

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


class RealGames:
    """The catalogue of a folder of original games, and episodes over them."""

    def __init__(self, data: str | Path, tiers: Any):
        require_engine()
        self.root = games_root(Path(data))
        # `alfworld/info.py` creates $ALFWORLD_DATA (default ~/.cache/alfworld) when imported; point it
        # at the user's data (it exists) so that a read-only home does not matter.
        os.environ.setdefault("ALFWORLD_DATA", str(self.root.parent if self.root.name == "json_2.1.1" else self.root))
        self.tier_of = tier_table(tiers)
        self.games = {g.task_id: g for g in discover(self.root)}
        if not self.games:
            raise FileNotFoundError(f"no solvable ALFWorld games (traj_data.json + game.tw-pddl) under {self.root}")
        self.pool = _EnginePool()

    def __len__(self) -> int:
        return len(self.games)

    def task(self, game: RealGame) -> Task:
        obj, mrecep, recep = game.params
        metadata = {"source": "alfworld", "scene": game.scene, "object": obj.lower(), "game_file": str(game.game_file)}
        key = "lamp" if game.task_type == "look_at_obj_in_light" else "receptacle"
        metadata[key] = recep.lower()
        if game.walkthrough_turns is not None:
            metadata["expert_turns"] = str(game.walkthrough_turns)
        return Task(
            id=game.task_id,
            split=game.split,
            difficulty=self.tier_of[game.task_type],
            category=game.task_type,
            metadata=metadata,
        )

    def listed(self) -> list[Task]:
        return [self.task(g) for g in self.games.values()]

    def resolve(self, task_id: str) -> Task | None:
        game = self.games.get(task_id.strip().strip("/"))
        return self.task(game) if game else None

    def start(self, task_id: str, style: Wording) -> RealEpisode:
        game = self.games.get(task_id.strip().strip("/"))
        if game is None:
            raise UnknownTask(task_id)
        engine = self.pool.take()
        episode = RealEpisode(engine, game.game_file, style)
        weakref.finalize(episode, self.pool.give, engine)
        return episode

    def close(self) -> None:
        self.pool.clear()


def _placing(command: str, wording: str) -> str:
    """A placing command (`put X in/on Y`, `move X to Y`, ...) in `wording`; any other as it is."""
    m = _PLACE.fullmatch(command)
    if not m:
        return command
    obj, recep = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return wording.format(obj=obj, recep=recep)


def _as_04(command: str) -> str:
    return _placing(command, "move {obj} to {recep}")


def _as_03(command: str) -> str:
    return _placing(command, "put {obj} in/on {recep}")


class RealEpisode(Episode):
    def __init__(self, engine: Any, game_file: Path, style: Wording):
        from alfworld.agents.expert import HandCodedTWAgent

        self.engine = engine
        self.game_file = game_file
        self.style = style
        self.engine.load(str(game_file))
        self.state: Any = None
        self.won = False
        self.expert = HandCodedTWAgent(max_steps=200)
        self.proposal: str | None = "look"  # ALFWorld's AlfredExpert starts every game with `look`

    def reset(self) -> str:
        self.state = self.engine.reset()
        self.expert.reset(str(self.game_file))
        self.expert.observe(self.state["feedback"])
        paragraphs = self.state["feedback"].split("\n\n")[1:]  # drop "-= Welcome to TextWorld, ALFRED! =-"
        return self.style.intro_separator.join(paragraphs)

    def _admitted(self, action: str) -> str:
        """The command to send: placing in whichever form this game admits."""
        admissible = self.state["admissible_commands"]
        for form in (action, _as_03(action), _as_04(action)):
            if form in admissible:
                return form
        return action

    def step(self, text: str) -> StepOutcome:
        action = self._admitted(extract_action(text))
        valid = action in self.state["admissible_commands"]
        self.state, _, _ = self.engine.step(action)
        reply = self.state["feedback"]
        if self.style.name == "agentgym":
            reply = _ARRIVE_LOC.sub("", reply)
        self.won = bool(self.state["won"])
        self._advance_expert(action)
        return StepOutcome(
            observation=reply,
            reward=1.0 if self.won else 0.0,
            terminated=self.won,
            success=self.won,
            action_valid=valid and reply != NOTHING_HAPPENS,
            parsed_action=action,
            info={"won": self.won},
        )

    def _advance_expert(self, last: str) -> None:
        from alfworld.agents.expert import HandCodedAgentFailed, HandCodedAgentTimeout

        admissible = self.state["admissible_commands"]
        view = dict(self.state)
        view["admissible_commands"] = [_as_04(c) for c in admissible]
        try:  # the expert tracks its inventory on commands that contain "put"
            proposal = self.expert.act(view, 0, self.won, _as_03(last))
        except (HandCodedAgentFailed, HandCodedAgentTimeout):
            self.proposal = None
            return
        sent = next((c for c in (proposal, _as_03(proposal)) if c in admissible), None)
        self.proposal = sent if sent is not None else "look"  # as AlfredExpert does

    def valid_actions(self) -> list[str]:
        return list(self.state["admissible_commands"])

    def state_key(self) -> str:
        facts = {
            str(fact)
            for fact in self.state["facts"]
            if not (fact.name.lower() in _HISTORY_FACTS or fact.name.startswith("not_"))
        }
        return hash_state({"facts": facts, "won": self.won})

    def expert_action(self) -> str | None:
        if self.won or self.proposal is None:
            return None
        thought = f"Following ALFWorld's hand-coded expert, the next step is: {self.proposal}."
        return f"Thought: {thought}\nAction: {self.proposal}"

"""Which minigrid BabyAI levels this environment serves, and how to build one.

Levels are named by their short name: the gym id without the `BabyAI-` prefix and the version
suffix (`BabyAI-GoToObjS6-v1` -> `GoToObjS6`). AgentGym serves 40 of them in a fixed order; an
AgentGym index i means level `AGENTGYM_LEVELS[i % 40]` with seed `i // 40`, so that order is kept
exactly here. Tiers and exclusions are data, not code, so a server can be configured differently.
"""

from __future__ import annotations

import logging
import re
from functools import cache

import gymnasium
import minigrid  # noqa: F401  (importing registers the BabyAI-* gym ids)
from minigrid.envs.babyai.core import roomgrid_level
from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel

log = logging.getLogger(__name__)

# minigrid prints every rejected mission sample to stdout; a server's stdout is no debug log, so the
# module's `print` is routed to this logger at debug level (module-local, thread-safe, nothing else changes).
roomgrid_level.print = lambda *args, **_: log.debug(" ".join(str(a) for a in args))  # type: ignore[attr-defined]

# AgentGym's agentenv-babyai `all_levels`, in its order (index 1..40 there, 0..39 here).
AGENTGYM_LEVELS: tuple[str, ...] = (
    "GoToRedBallGrey",
    "GoToRedBall",
    "GoToRedBallNoDists",
    "GoToObjS6",  # -v0 in AgentGym's minigrid; -v1 in minigrid 3.x
    "GoToLocalS8N7",
    "GoToObjMazeS7",
    "GoToImpUnlock",
    "GoToSeqS5R2",
    "GoToRedBlueBall",
    "GoToDoor",
    "GoToObjDoor",
    "Open",
    "OpenRedDoor",
    "OpenDoorLoc",
    "OpenRedBlueDoorsDebug",
    "OpenDoorsOrderN4Debug",
    "Pickup",
    "UnblockPickup",
    "PickupLoc",
    "PickupDistDebug",
    "PickupAbove",
    "PutNextLocalS6N4",
    "PutNextS7N4Carrying",
    "Unlock",
    "UnlockLocalDist",
    "KeyInBox",
    "UnlockPickupDist",
    "BlockedUnlockPickup",
    "UnlockToUnlock",
    "ActionObjDoor",
    "FindObjS7",
    "KeyCorridorS6R3",
    "OneRoomS20",
    "MoveTwoAcrossS8N9",
    "SynthS5R2",
    "SynthLoc",
    "SynthSeq",
    "MiniBossLevel",
    "BossLevel",
    "BossLevelNoUnlock",
)

# Levels without an oracle: minigrid's BabyAIBot cannot solve them (its own docstring says so), so
# no task of theirs is listed; they stay playable through an explicit task id.
EXCLUDED_LEVELS: dict[str, str] = {
    "PutNextS7N4Carrying": "the agent starts carrying an object, which BabyAIBot's PutNext plan cannot handle",
    "KeyInBox": "the key is inside a box; BabyAIBot gives up as soon as a box is opened",
}

# Default tiers over the 38 levels with an oracle. Easy: one room, the bot needs <= ~15 primitive
# steps (mean 3-12). Hard: several rooms, locked doors, sequences, Synth/Boss (mean 20-150 steps).
EASY_LEVELS: tuple[str, ...] = (
    "GoToRedBallGrey",
    "GoToRedBall",
    "GoToRedBallNoDists",
    "GoToObjS6",
    "GoToLocalS8N7",
    "GoToRedBlueBall",
    "GoToDoor",
    "GoToObjDoor",
    "OpenRedDoor",
    "OpenDoorLoc",
    "OpenRedBlueDoorsDebug",
    "OpenDoorsOrderN4Debug",
    "PickupLoc",
    "PickupDistDebug",
    "ActionObjDoor",
)
HARD_LEVELS: tuple[str, ...] = tuple(
    name for name in AGENTGYM_LEVELS if name not in EASY_LEVELS and name not in EXCLUDED_LEVELS
)
DEFAULT_TIERS: dict[str, tuple[str, ...]] = {"easy": EASY_LEVELS, "hard": HARD_LEVELS}

_GYM_ID = re.compile(r"^BabyAI-(?P<name>\w+)-v(?P<version>\d+)$")


@cache
def _registered() -> dict[str, str]:
    """Short name -> newest registered gym id, for every BabyAI level minigrid registers."""
    newest: dict[str, tuple[int, str]] = {}
    for gym_id in gymnasium.envs.registry:
        match = _GYM_ID.match(gym_id)
        if match:
            name, version = match["name"], int(match["version"])
            if name not in newest or version > newest[name][0]:
                newest[name] = (version, gym_id)
    return {name: gym_id for name, (_, gym_id) in newest.items()}


def known_levels() -> list[str]:
    """All BabyAI short names minigrid registers (the 40 AgentGym ones and the rest)."""
    return sorted(_registered())


def gym_id(level: str) -> str:
    """The registered gym id of a short level name; KeyError for an unknown level."""
    return _registered()[level]


def make_level(level: str) -> RoomGridLevel:
    """A fresh, unwrapped level instance (wrappers add checks we do not need on every step)."""
    env = gymnasium.make(gym_id(level)).unwrapped
    assert isinstance(env, RoomGridLevel), f"{level} is not a BabyAI level"
    return env

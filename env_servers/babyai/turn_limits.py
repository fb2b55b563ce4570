"""Turn limits per level, sized by what the oracle needs, so that a tier's tasks fit their budget.

BabyAI's own levels scale their step budget (minigrid's `max_steps`) with the grid; turns scale the
same way but not in proportion (a long corridor is one `go to`, a big unexplored room many `move
forward`s), so each level's limit is measured: the longest oracle episode over the level's surveyed
seeds (the first 40 listed train and 10 listed test seeds), a quarter more for an agent's detours,
rounded up to a multiple of 5, never below `BASE_MAX_TURNS` (AgentGym's 20 turns) nor above
`MAX_TURNS_LIMIT`: `level_limit`. `python -m gymwire.env_servers.babyai.survey --listed 40:10
--episodes --limits` measures them again and prints this table.

Every task of a tabled level states its level's limit as `max_turns` in its metadata, and a Reset
that sets no max_turns gets it (the SDK's rule). A level outside the table (playable by id only)
states no limit: the server's default (`BASE_MAX_TURNS`) applies.
"""

from __future__ import annotations

import math

BASE_MAX_TURNS = 20
MAX_TURNS_LIMIT = 200
MARGIN = 1.25

# Longest oracle episode per level, in turns, over the surveyed seeds (survey --listed 40:10 --episodes).
LONGEST_ORACLE_EPISODE: dict[str, int] = {
    "GoToRedBallGrey": 6,
    "GoToRedBall": 6,
    "GoToRedBallNoDists": 8,
    "GoToObjS6": 3,
    "GoToLocalS8N7": 8,
    "GoToRedBlueBall": 6,
    "GoToDoor": 4,
    "GoToObjDoor": 10,
    "OpenRedDoor": 3,
    "OpenDoorLoc": 9,
    "OpenRedBlueDoorsDebug": 10,
    "OpenDoorsOrderN4Debug": 3,
    "PickupLoc": 6,
    "PickupDistDebug": 3,
    "ActionObjDoor": 9,
    "GoToObjMazeS7": 40,
    "GoToImpUnlock": 80,
    "GoToSeqS5R2": 14,
    "Open": 47,
    "Pickup": 38,
    "UnblockPickup": 67,
    "PickupAbove": 16,
    "PutNextLocalS6N4": 10,
    "Unlock": 74,
    "UnlockLocalDist": 31,
    "UnlockPickupDist": 38,
    "BlockedUnlockPickup": 27,
    "UnlockToUnlock": 23,
    "FindObjS7": 36,
    "KeyCorridorS6R3": 63,
    "OneRoomS20": 84,
    "MoveTwoAcrossS8N9": 55,
    "SynthS5R2": 69,
    "SynthLoc": 47,
    "SynthSeq": 73,
    "MiniBossLevel": 43,
    "BossLevel": 109,
    "BossLevelNoUnlock": 73,
}


def level_limit(longest: int) -> int:
    """The turn limit of a level whose longest oracle episode took `longest` turns."""
    return min(MAX_TURNS_LIMIT, max(BASE_MAX_TURNS, 5 * math.ceil(MARGIN * longest / 5)))


def turn_limit(level: str) -> int | None:
    """The level's turn limit, or None for a level that was not surveyed."""
    longest = LONGEST_ORACLE_EPISODE.get(level)
    return None if longest is None else level_limit(longest)

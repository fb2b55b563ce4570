"""Task ids, splits, tiers and the listed catalogue.

A task is a (level, seed) pair; its id says which, so any well-formed id resolves without a table:

- `babyai-<i>`: AgentGym's numbering, level `AGENTGYM_LEVELS[i % 40]` with seed `i // 40`;
- `<Level>:seed=<n>`: any registered BabyAI level by short name, e.g. `GoToRedBallGrey:seed=7`.

The split is a function of the seed alone: seeds below `test_seed_start` (default 1,000,000) are
train, the rest test, so train and test never share an initial state whatever the id form. AgentGym
ids therefore fall in train. The tier is the configured tier that holds the level (`unrated` for a
level in none). The listing holds, for each split and tiered level, the first `tasks_per_level[split]`
seeds of the split's range that the oracle solves (see `solvable.oracle_problem`), with `<Level>:seed=<n>`
ids; the category is the level name. Tasks the oracle cannot solve stay playable by id, marked
`oracle: none` in their metadata. A task of a surveyed level states its turn limit as `max_turns`
(turn_limits.py: the level's longest oracle episode and a quarter more), which a Reset without
max_turns gets; other tasks get the server's default (20).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from gymwire.env_servers.babyai.levels import (
    AGENTGYM_LEVELS,
    DEFAULT_TIERS,
    EXCLUDED_LEVELS,
    gym_id,
    known_levels,
)
from gymwire.env_servers.babyai.solvable import oracle_problem
from gymwire.env_servers.babyai.turn_limits import turn_limit
from gymwire.env_servers.sdk import Task

TRAIN, TEST = "train", "test"
UNRATED = "unrated"
DEFAULT_TEST_SEED_START = 1_000_000
DEFAULT_TASKS_PER_LEVEL: dict[str, int] = {TRAIN: 50, TEST: 10}
MAX_SEED = 2**63 - 1

_AGENTGYM_ID = re.compile(r"^babyai-(?P<index>\d{1,19})$")
_NAMED_ID = re.compile(r"^(?P<level>[A-Za-z0-9]+):seed=(?P<seed>\d{1,19})$")


def named_id(level: str, seed: int) -> str:
    return f"{level}:seed={seed}"


def agentgym_index(level: str, seed: int) -> int | None:
    """The AgentGym data index of (level, seed), for the 40 levels AgentGym serves."""
    if level not in AGENTGYM_LEVELS:
        return None
    return seed * len(AGENTGYM_LEVELS) + AGENTGYM_LEVELS.index(level)


def parse_task_id(task_id: str) -> tuple[str, int] | None:
    """(level, seed) for a well-formed id of either form, else None."""
    match = _AGENTGYM_ID.match(task_id)
    if match:
        index = int(match["index"])
        level, seed = AGENTGYM_LEVELS[index % len(AGENTGYM_LEVELS)], index // len(AGENTGYM_LEVELS)
    else:
        match = _NAMED_ID.match(task_id)
        if match is None or match["level"] not in known_levels():
            return None
        level, seed = match["level"], int(match["seed"])
    return (level, seed) if seed <= MAX_SEED else None


class TaskScheme:
    """Splits, tiers and listing sizes; everything a catalogue needs, all of it configurable."""

    def __init__(
        self,
        tiers: Mapping[str, Sequence[str]] | None = None,
        tasks_per_level: Mapping[str, int] | None = None,
        test_seed_start: int = DEFAULT_TEST_SEED_START,
    ):
        self.tiers = {tier: tuple(levels) for tier, levels in (tiers or DEFAULT_TIERS).items()}
        self.tasks_per_level = dict(tasks_per_level or DEFAULT_TASKS_PER_LEVEL)
        self.test_seed_start = test_seed_start
        self._tier_of: dict[str, str] = {}
        known = set(known_levels())
        for tier, levels in self.tiers.items():
            for level in levels:
                if level not in known:
                    raise ValueError(f"unknown BabyAI level {level!r} in tier {tier!r}")
                if level in self._tier_of:
                    raise ValueError(f"level {level!r} is in tiers {self._tier_of[level]!r} and {tier!r}")
                self._tier_of[level] = tier
        if unknown := set(self.tasks_per_level) - {TRAIN, TEST}:
            raise ValueError(f"unknown splits {sorted(unknown)}; use {TRAIN!r} and {TEST!r}")
        if test_seed_start <= max(self.tasks_per_level.get(TRAIN, 0), 1):
            raise ValueError("test_seed_start must leave room for the listed train seeds")

    def split_of(self, seed: int) -> str:
        return TEST if seed >= self.test_seed_start else TRAIN

    def tier_of(self, level: str) -> str:
        return self._tier_of.get(level, UNRATED)

    def task(self, level: str, seed: int, task_id: str | None = None, problem: str | None = None) -> Task:
        """The task for (level, seed); `problem` says why the oracle cannot solve it, if it cannot."""
        metadata = {"level": level, "gym_id": gym_id(level), "seed": str(seed)}
        index = agentgym_index(level, seed)
        if index is not None:
            metadata["agentgym_id"] = f"babyai-{index}"
        # Tasks the oracle cannot solve are marked, never silently mixed with the rest.
        metadata["oracle"] = "babyai_bot" if problem is None else "none"
        if problem is not None:
            metadata["oracle_problem"] = problem
        if (limit := turn_limit(level)) is not None:
            metadata["max_turns"] = str(limit)
        return Task(task_id or named_id(level, seed), self.split_of(seed), self.tier_of(level), level, metadata)

    def resolve(self, task_id: str) -> Task | None:
        parsed = parse_task_id(task_id)
        if parsed is None:
            return None
        level, seed = parsed
        return self.task(level, seed, task_id=task_id, problem=oracle_problem(level, seed))

    def seeds(self, level: str, split: str) -> list[int]:
        """The listed seeds of a level: the first ones of the split's range that the oracle solves."""
        count = self.tasks_per_level.get(split, 0)
        if level in EXCLUDED_LEVELS:
            return []
        seed = self.test_seed_start if split == TEST else 0
        # Bounded scan: a level whose seeds mostly fail lists fewer tasks instead of scanning forever.
        end = min(seed + 20 * count + 100, MAX_SEED if split == TEST else self.test_seed_start)
        chosen: list[int] = []
        while len(chosen) < count and seed < end:
            if oracle_problem(level, seed) is None:
                chosen.append(seed)
            seed += 1
        return chosen

    def listing(self) -> list[Task]:
        """The enumerable tasks: per split, per tier, per level, the first seeds the oracle solves.

        A level the oracle cannot solve at all has no listed tasks, even when configured in a tier.
        """
        return [
            self.task(level, seed)
            for split in (TRAIN, TEST)
            for levels in self.tiers.values()
            for level in levels
            for seed in self.seeds(level, split)
        ]

"""Task ids, difficulty tiers and splits.

Generated catalogue: `gen:<ASIN>:<variant>`, e.g. `gen:B01BF432PZ:0`. The ASIN names the target
product (a seeded bijection of its position, so ids stay valid in any larger catalogue of the same
seed); the variant (0..999) draws the goal's option values and price cap. The listing shows
variant 0 of `tasks_per_tier` products per (split, tier), in a seeded shuffle of the catalogue;
every other variant and product resolves.

Real data (see real_data.py): `synthetic-<i>` and `human-<i>` are positions in the original's goal
lists after its seed-233 shuffle, i.e. AgentGym's session ids.

Tiers (parameters of `TierRule`): complexity = #goal attributes + #goal options (2..7 here; the
price cap always adds one more term), distractors = the other members of the target's family
(same type, other attributes/options/price). Hard: complexity >= 5 or a family of >= 10; easy:
complexity <= 3 and a family of <= 4; medium otherwise. Real goals have no families: complexity
alone decides. The price cap is part of every goal (one more reward term, drawn by the original's
rule) and is recorded in the task metadata (`price`, `price_cap`) rather than used as a tier axis.

Splits: a generated product is in test when a seeded 64-bit hash of its family falls in the
lowest `test_percent` of 100 buckets, so train and test never share a target or a distractor
family. Real synthetic goals split the same way by target ASIN; human goals keep the original's
split (test 0-499, dev 500-1499, train 1500+).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

TIERS = ("easy", "medium", "hard")
GEN_PREFIX = "gen:"
MAX_VARIANT = 999
_GEN_ID = re.compile(r"gen:([0-9A-Za-z]{10}):(\d{1,3})")


@dataclass(frozen=True)
class TierRule:
    easy_max_complexity: int = 3
    easy_max_family: int = 4
    hard_min_complexity: int = 5
    hard_min_family: int = 10

    def tiers(self, complexity: np.ndarray, family: np.ndarray | None = None) -> np.ndarray:
        """Tier names for arrays of complexities (and family sizes; None for real goals)."""
        if family is None:
            family = np.ones_like(complexity)
        hard = (complexity >= self.hard_min_complexity) | (family >= self.hard_min_family)
        easy = (complexity <= self.easy_max_complexity) & (family <= self.easy_max_family) & ~hard
        return np.where(hard, "hard", np.where(easy, "easy", "medium"))

    def tier(self, complexity: int, family: int = 1) -> str:
        return str(self.tiers(np.array([complexity]), np.array([family]))[0])


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash (vectorised, same on every machine)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def split_buckets(keys: np.ndarray, seed: int) -> np.ndarray:
    salt = np.uint64((seed * 0x9E3779B97F4A7C15 + 0x5EB) % (1 << 64))
    return (_mix64(keys.astype(np.uint64) ^ salt) % np.uint64(100)).astype(np.int64)


def splits(keys: np.ndarray, seed: int, test_percent: int) -> np.ndarray:
    return np.where(split_buckets(keys, seed) < test_percent, "test", "train")


def parse_generated_id(task_id: str) -> tuple[str, int] | None:
    """`gen:<ASIN>:<variant>` -> (ASIN, variant), else None."""
    m = _GEN_ID.fullmatch(task_id.strip())
    return (m.group(1).upper(), int(m.group(2))) if m else None


def generated_id(asin: str, variant: int = 0) -> str:
    return f"{GEN_PREFIX}{asin}:{variant}"

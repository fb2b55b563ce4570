"""The task catalogue of a generated store: listing, resolving ids, and the goal of each task.

Everything is computed from the rows with numpy, so listing tasks over a million products at start-
up takes milliseconds (no product is rendered until a listed task needs its metadata).
"""

from __future__ import annotations

import numpy as np

from gymwire.env_servers.sdk import Task
from gymwire.env_servers.webshop.goals import NO_CAP, Goal
from gymwire.env_servers.webshop.store import GeneratedCatalogue
from gymwire.env_servers.webshop.tasks import (
    MAX_VARIANT,
    TIERS,
    TierRule,
    generated_id,
    parse_generated_id,
    splits,
)
from gymwire.env_servers.webshop.vocabulary import PRODUCT_TYPES


class GeneratedTaskSet:
    def __init__(self, catalogue: GeneratedCatalogue, rule: TierRule, test_percent: int, per_tier: int):
        if not 0 <= test_percent <= 100:
            raise ValueError(f"test_percent must be 0-100, got {test_percent}")
        self.catalogue = catalogue
        self.rule = rule
        self.test_percent = test_percent
        self.per_tier = per_tier
        self.seed = catalogue.spec.seed

    def _classify(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rows = self.catalogue.rows[indices]
        complexity = rows["n_goal_attrs"].astype(np.int64) + rows["n_dims"]
        family = rows["family_size"].astype(np.int64)
        return (
            splits(rows["family"], self.seed, self.test_percent),
            self.rule.tiers(complexity, family),
            complexity,
            family,
        )

    def task(self, index: int, variant: int = 0) -> Task:
        split, tier, complexity, family = (x[0] for x in self._classify(np.array([index])))
        row = self.catalogue.rows[index]
        ptype = PRODUCT_TYPES[int(row["type"])]
        goal = self.catalogue.goal(index, variant)
        asin = goal.asin
        return Task(
            id=generated_id(asin, variant),
            split=str(split),
            difficulty=str(tier),
            category=ptype.department,
            metadata={
                "source": "generated",
                "asin": asin,
                "product_type": ptype.phrase,
                "complexity": str(int(complexity)),
                "attributes": str(int(row["n_goal_attrs"])),
                "options": str(int(row["n_dims"])),
                "distractors": str(int(family) - 1),
                "family": str(int(row["family"])),
                "price": f"{int(row['price_cents']) / 100:.2f}",
                "price_cap": f"{goal.price_upper:.2f}" if goal.price_upper < NO_CAP else "none",
            },
        )

    def listed(self) -> list[Task]:
        """`per_tier` tasks per (split, tier), products in a seeded shuffle, variant 0."""
        n = len(self.catalogue)
        order = np.random.default_rng([self.seed, 0x7A5C]).permutation(n)
        wanted = {(s, t): self.per_tier for s in ("train", "test") for t in TIERS}
        picked: list[int] = []
        for start in range(0, n, 8192):
            block = order[start : start + 8192]
            split, tier, _, _ = self._classify(block)
            for index, s, t in zip(block.tolist(), split.tolist(), tier.tolist(), strict=True):
                if wanted.get((s, t), 0) > 0:
                    wanted[(s, t)] -= 1
                    picked.append(index)
            if not any(wanted.values()):
                break
        return [self.task(i) for i in picked]

    def resolve(self, task_id: str) -> Task | None:
        parsed = parse_generated_id(task_id)
        if parsed is None:
            return None
        asin, variant = parsed
        index = self.catalogue.index_of(asin)
        if index is None or variant > MAX_VARIANT:
            return None
        return self.task(index, variant)

    def goal(self, task_id: str) -> tuple[Goal, int]:
        parsed = parse_generated_id(task_id)
        assert parsed is not None
        index = self.catalogue.index_of(parsed[0])
        assert index is not None
        return self.catalogue.goal(index, parsed[1]), index

"""The task catalogue over the original goals: `synthetic-<i>` and `human-<i>`, AgentGym's numbering.

Human goals keep the original's split by position (test 0-499, dev 500-1499, train 1500+);
synthetic goals are split by a seeded hash of the target ASIN, so one product's goals stay together.
Tiers use the goal's complexity (#attributes + #options) alone.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from gymwire.env_servers.sdk import Task
from gymwire.env_servers.webshop.goals import Goal
from gymwire.env_servers.webshop.real_data import HUMAN_SPLITS, RealCatalogue
from gymwire.env_servers.webshop.tasks import TierRule, splits

_ID = re.compile(r"(synthetic|human)-(\d{1,9})")


def _asin_key(asin: str) -> int:
    return int.from_bytes(hashlib.sha256(asin.encode()).digest()[:8], "big") >> 1


class RealTaskSet:
    """Tasks over the original goals: `synthetic-<i>` and `human-<i>` (AgentGym's numbering)."""

    def __init__(
        self,
        catalogue: RealCatalogue,
        rule: TierRule,
        test_percent: int,
        goals: str = "synthetic",
        list_limit: int = 20_000,
    ):
        kinds = {"synthetic": ("synthetic",), "human": ("human",), "both": ("synthetic", "human")}
        if goals not in kinds:
            raise ValueError(f"goals must be synthetic, human or both, got {goals!r}")
        self.catalogue = catalogue
        self.rule = rule
        self.test_percent = test_percent
        self.kinds = kinds[goals]
        self.list_limit = list_limit

    def task(self, kind: str, position: int) -> Task:
        goal, _ = self.catalogue.goal(kind, position)
        complexity = len(goal.attributes) + len(goal.options)
        if kind == "human":
            split = next(s for lo, hi, s in HUMAN_SPLITS if position >= lo and (hi is None or position < hi))
        else:
            split = str(splits(np.array([_asin_key(goal.asin)], dtype=np.uint64), 0, self.test_percent)[0])
        return Task(
            id=f"{kind}-{position}",
            split=split,
            difficulty=self.rule.tier(complexity),
            category=goal.category,
            metadata={
                "source": f"webshop-{kind}",
                "asin": goal.asin,
                "complexity": str(complexity),
                "attributes": str(len(goal.attributes)),
                "options": str(len(goal.options)),
            },
        )

    def listed(self) -> list[Task]:
        return [
            self.task(kind, i)
            for kind in self.kinds
            for i in range(min(self.catalogue.goal_count(kind), self.list_limit))
        ]

    def resolve(self, task_id: str) -> Task | None:
        m = _ID.fullmatch(task_id.strip())
        if m is None or int(m.group(2)) >= self.catalogue.goal_count(m.group(1)):
            return None
        return self.task(m.group(1), int(m.group(2)))

    def goal(self, task_id: str) -> tuple[Goal, int]:
        m = _ID.fullmatch(task_id.strip())
        assert m is not None
        return self.catalogue.goal(m.group(1), int(m.group(2)))

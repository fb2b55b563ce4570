"""Task ids, difficulty tiers, splits and the catalogue.

Three id forms, all resolvable by `TaskCatalogue.get`:

- `goal:<item>`: a real Minecraft goal by name, e.g. `goal:blue_dye` (also accepted:
  `goal:minecraft:blue_dye`, `goal:blue dye`; the listing uses the first form). All 544 goals are
  listed, sorted by depth, then name.
- `textcraft-<i>`: AgentGym's numbering, for comparing with published results. AgentGym's
  `reset(seed=i)` takes the goals of depth >= 2 (419 of them) sorted by depth *descending* and
  picks number `i % 419`; within one depth the original keeps recipe-file order, which with the
  files sorted is item-name order. So `textcraft-0` is the first depth-4 goal by name. Resolved, not
  listed (they alias `goal:` tasks and give the same first observation).
- `gen:depth=<d>[:fanin=..][:count=..][:tags=..][:distractors=..]:seed=<s>`: a generated world (see
  generator.py). Listed for `generated_depths` x `range(generated_per_depth)` seeds; any other
  seed or setting resolves.

Real tasks carry `expert_turns` (the oracle's turns from an empty inventory) in their metadata.
Difficulty = crafting depth through `tiers` (default easy 1-2, hard 3+). Category = `depth-<d>` for
real goals, `gen-depth-<d>` for generated ones. Split = test when a stable hash (SHA-256) of the
goal's item id (real) or of the canonical task id (generated) falls in the lowest `test_percent`
of 100 buckets, else train: disjoint by construction and independent of the listing's size.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gymwire.env_servers.sdk import Task, TaskCatalogue
from gymwire.env_servers.textcraft.book import NAMESPACE, RecipeBook, display_name, item_id
from gymwire.env_servers.textcraft.generator import MAX_DEPTH, GenSpec
from gymwire.env_servers.textcraft.oracle import plan

DEFAULT_TIERS: Mapping[str, tuple[int, int]] = {"easy": (1, 2), "hard": (3, MAX_DEPTH)}
GOAL_PREFIX = "goal:"
AGENTGYM_PREFIX = "textcraft-"
GEN_PREFIX = "gen:"
_AGENTGYM_ID = re.compile(r"textcraft-(\d{1,9})")


@dataclass(frozen=True)
class RealGoal:
    """A task from the real recipes: craft `goal` (an item id)."""

    goal: str


def tier_of(depth: int, tiers: Mapping[str, tuple[int, int]]) -> str:
    """The tier whose depth range holds `depth`; outside every range, the nearest range's tier."""

    def distance(bounds: tuple[int, int]) -> int:
        low, high = bounds
        return max(low - depth, 0, depth - high)

    return min(tiers, key=lambda name: distance(tiers[name]))


def split_of(key: str, test_percent: int) -> str:
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
    return "test" if bucket < test_percent else "train"


def agentgym_order(book: RecipeBook) -> list[str]:
    """Goal ids in AgentGym's `reset(seed)` order (see the module docstring)."""
    deep = [g for g in book.goals() if book.depth(g) >= 2]
    return sorted(deep, key=lambda g: (-book.depth(g), g))


class TaskIds:
    """Turns ids into tasks and back, for one recipe book and one tier/split policy."""

    def __init__(self, book: RecipeBook, tiers: Mapping[str, tuple[int, int]], test_percent: int):
        if not tiers:
            raise ValueError("at least one difficulty tier is needed")
        if not 0 <= test_percent <= 100:
            raise ValueError(f"test_percent must be 0-100, got {test_percent}")
        self.book = book
        self.tiers = dict(tiers)
        self.test_percent = test_percent
        self._agentgym = agentgym_order(book)

    def parse(self, task_id: str) -> RealGoal | GenSpec | None:
        """The task an id names, or None when the id is not well formed or names no goal."""
        if task_id.startswith(GEN_PREFIX):
            try:
                return GenSpec.parse(task_id)
            except ValueError:
                return None
        if task_id.startswith(GOAL_PREFIX):
            name = task_id[len(GOAL_PREFIX) :].strip().lower().removeprefix(NAMESPACE)
            goal = item_id(name)
            return RealGoal(goal) if goal in self.book.recipes else None
        if (m := _AGENTGYM_ID.fullmatch(task_id)) and self._agentgym:
            return RealGoal(self._agentgym[int(m.group(1)) % len(self._agentgym)])
        return None

    def real_task(self, goal: str, task_id: str | None = None) -> Task:
        depth = self.book.depth(goal)
        return Task(
            id=task_id or GOAL_PREFIX + goal.removeprefix(NAMESPACE),
            split=split_of(goal, self.test_percent),
            difficulty=tier_of(depth, self.tiers),
            category=f"depth-{depth}",
            metadata={
                "source": "minecraft",
                "goal": display_name(goal),
                "depth": str(depth),
                "expert_turns": str(len(plan(self.book, goal, {}))),  # to pick max_turns (2 goals need > 30)
            },
        )

    def generated_task(self, spec: GenSpec) -> Task:
        task_id = spec.task_id()
        return Task(
            id=task_id,
            split=split_of(task_id, self.test_percent),
            difficulty=tier_of(spec.depth, self.tiers),
            category=f"gen-depth-{spec.depth}",
            metadata={"source": "generated", "depth": str(spec.depth), "seed": str(spec.seed)},
        )

    def resolve(self, task_id: str) -> Task | None:
        """A task for any well-formed id (the catalogue's fallback for ids it does not list)."""
        parsed = self.parse(task_id)
        if isinstance(parsed, RealGoal):
            keep_id = task_id if task_id.startswith(AGENTGYM_PREFIX) else None
            return self.real_task(parsed.goal, keep_id)
        if isinstance(parsed, GenSpec):
            return self.generated_task(parsed)
        return None

    def catalogue(self, generated_depths: Sequence[int], generated_per_depth: int) -> TaskCatalogue:
        real = sorted(self.book.goals(), key=lambda g: (self.book.depth(g), g))
        tasks = [self.real_task(g) for g in real]
        tasks += [
            self.generated_task(GenSpec(depth=d, seed=s)) for d in generated_depths for s in range(generated_per_depth)
        ]
        return TaskCatalogue(tasks, resolver=self.resolve)

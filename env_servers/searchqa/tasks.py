"""Task ids, difficulty tiers, splits and the catalogue.

Two id forms:

- `gen:<category>:<n>`: question n (any n >= 0) of a category (`single`, `bridge`, `comparison`,
  `three_hop`) over the server's generated knowledge base. The listing shows n < `per_category`
  of each category; any other n resolves. The question itself depends on the knowledge base's seed
  and size (constructor arguments), which the task metadata records.
- `qa:<id>`: a question of a user's QA file, by its `id` field or, without one, its line number
  (0-based, blank lines skipped). All are listed, in file order.

Difficulty: generated questions by category through `tiers` (default: single = easy, multi-hop =
hard); real questions from a field when the file has it, else a fixed default. Category: the
question type for generated questions; for real ones a field when present, else the QA file's stem.
Split: `test` when a SHA-256 bucket of the task id falls in the lowest `test_percent` of 100, else
`train` (disjoint by construction, independent of the listing's size), unless a real file is declared
to be one split.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from gymwire.env_servers.sdk import Task, TaskCatalogue
from gymwire.env_servers.searchqa.questions import CATEGORIES
from gymwire.env_servers.searchqa.real import QaItem

GEN_PREFIX = "gen:"
QA_PREFIX = "qa:"
DEFAULT_TIERS: Mapping[str, str] = {"single": "easy", "bridge": "hard", "comparison": "hard", "three_hop": "hard"}
HOPS = {"single": 1, "bridge": 2, "comparison": 2, "three_hop": 3}
_GEN_ID = re.compile(r"gen:([a-z_]+):(\d{1,9})")


def split_of(task_id: str, test_percent: int) -> str:
    bucket = int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:8], "big") % 100
    return "test" if bucket < test_percent else "train"


def parse_generated(task_id: str) -> tuple[str, int] | None:
    """(category, n) of a `gen:` id, or None when it is not one."""
    match = _GEN_ID.fullmatch(task_id)
    if match is None or match.group(1) not in CATEGORIES:
        return None
    return match.group(1), int(match.group(2))


class GeneratedTasks:
    def __init__(self, tiers: Mapping[str, str], test_percent: int, kb_label: str):
        missing = [c for c in CATEGORIES if c not in tiers]
        if missing:
            raise ValueError(f"tiers must give a difficulty for every category; missing {missing}")
        if not 0 <= test_percent <= 100:
            raise ValueError(f"test_percent must be 0-100, got {test_percent}")
        self.tiers, self.test_percent, self.kb_label = dict(tiers), test_percent, kb_label

    def task(self, category: str, n: int) -> Task:
        task_id = f"{GEN_PREFIX}{category}:{n}"
        return Task(
            task_id,
            split_of(task_id, self.test_percent),
            self.tiers[category],
            category,
            {"source": "generated", "hops": str(HOPS[category]), "kb": self.kb_label},
        )

    def resolve(self, task_id: str) -> Task | None:
        parsed = parse_generated(task_id)
        return self.task(*parsed) if parsed else None

    def catalogue(self, per_category: int) -> TaskCatalogue:
        tasks = [self.task(c, n) for c in CATEGORIES for n in range(per_category)]
        return TaskCatalogue(tasks, resolver=self.resolve)


class RealTasks:
    def __init__(
        self,
        items: Sequence[QaItem],
        *,
        source: str,
        test_percent: int,
        split: str | None,
        difficulty_field: str | None,
        default_difficulty: str,
        category_field: str | None,
    ):
        if split not in (None, "train", "test"):
            raise ValueError(f"qa_split must be 'train', 'test' or None (hashed), got {split!r}")
        self.items = {f"{QA_PREFIX}{item.id}": item for item in items}
        self.tasks = [
            Task(
                task_id,
                split or split_of(task_id, test_percent),
                item.lookup(difficulty_field) or default_difficulty,
                item.lookup(category_field) or source,
                {"source": source},
            )
            for task_id, item in self.items.items()
        ]

    def catalogue(self) -> TaskCatalogue:
        return TaskCatalogue(self.tasks)

"""Procedural recipe graphs: unlimited TextCraft worlds of a chosen difficulty.

Each task id such as `gen:depth=3:seed=42` names one small invented world (a `RecipeBook`) with a
goal of *exactly* that crafting depth, built from a seeded RNG so the same id always gives the same
world. Names are Minecraft-like but invented (`jade ingot`, `cinder lantern`), so a model cannot
answer from memorised Minecraft recipes; the game rules are those of the real recipes.

Controls (`GenSpec`): depth of the goal, fan-in (inputs per recipe), the largest input count, the
chance that a depth-1 input is a tag (any of 2-3 members, like `planks`), and the number of
distractor recipes (recipes that consume the goal tree's items but are not needed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace

from gymwire.env_servers.textcraft.book import Ingredient, Recipe, RecipeBook, item_id

MAX_DEPTH = 6
MAX_FANIN = 4
MAX_COUNT = 9
MAX_DISTRACTORS = 30

MATERIALS = (
    "amber", "ashen", "azurite", "bramble", "cinder", "coral", "dusk", "ember", "fern", "frost",
    "gloam", "hazel", "ivory", "jade", "kelp", "larch", "lumen", "marrow", "mire", "nimbus",
    "onyx", "opal", "pewter", "quill", "rust", "sable", "shale", "thorn", "umber", "verdant",
    "willow", "zinc",
)  # fmt: skip
BASE_NOUNS = (
    "ore", "log", "petal", "sand", "clay", "reed", "feather", "bone", "shell", "crystal", "root",
    "pebble", "resin", "seed", "moss", "flint", "husk", "sap",
)  # fmt: skip
PART_NOUNS = (
    "ingot", "rod", "thread", "brick", "nugget", "slab", "string", "gear", "tile", "rivet", "coil",
    "dye", "glass", "bead", "strap", "hinge", "wick", "powder", "block", "lens",
)  # fmt: skip
TOP_NOUNS = (
    "lantern", "pickaxe", "helmet", "boots", "chest", "door", "banner", "compass", "anvil", "bed",
    "sign", "fence", "ladder", "bucket", "shears", "torch", "bow", "shield", "rail", "hopper",
    "furnace", "table", "carpet", "stairs", "trapdoor", "barrel", "loom", "bell", "clock", "kite",
)  # fmt: skip
# (member noun, the base noun each member is made from); the tag's name is the member noun's plural
TAG_KINDS = (("board", "timber"), ("cloth", "fleece"), ("dust", "stone"), ("pane", "silica"), ("fiber", "stalk"))
ADJECTIVES = ("old", "bright", "dark", "rough", "polished", "cracked", "carved", "woven", "gilded", "mossy")


@dataclass(frozen=True)
class GenSpec:
    """The knobs of one generated world; with `seed`, they determine it completely."""

    depth: int = 2
    seed: int = 0
    fanin: int = 3  # most distinct inputs in one recipe
    count: int = 4  # largest count of one input
    tags: float = 0.3  # chance that a depth-1 input is a tag
    distractors: int = 10  # distractor recipes added to the world (and the most shown)

    def __post_init__(self) -> None:
        checks = {
            "depth": 1 <= self.depth <= MAX_DEPTH,
            "seed": self.seed >= 0,
            "fanin": 1 <= self.fanin <= MAX_FANIN,
            "count": 1 <= self.count <= MAX_COUNT,
            "tags": 0.0 <= self.tags <= 1.0,
            "distractors": 0 <= self.distractors <= MAX_DISTRACTORS,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"generator setting out of range: {', '.join(f'{n}={getattr(self, n)}' for n in bad)} "
                f"(depth 1-{MAX_DEPTH}, seed >= 0, fanin 1-{MAX_FANIN}, count 1-{MAX_COUNT}, tags 0-1, "
                f"distractors 0-{MAX_DISTRACTORS})"
            )

    def task_id(self) -> str:
        """Canonical id: `gen:depth=D` + settings that differ from the defaults + `:seed=S`."""
        default = GenSpec()
        extra = [
            f"{f.name}={getattr(self, f.name)}"
            for f in fields(self)
            if f.name not in ("depth", "seed") and getattr(self, f.name) != getattr(default, f.name)
        ]
        return ":".join(["gen", f"depth={self.depth}", *extra, f"seed={self.seed}"])

    @classmethod
    def parse(cls, task_id: str) -> GenSpec:
        """`gen:depth=3:seed=42` (settings in any order; omitted ones take defaults) -> GenSpec."""
        head, _, rest = task_id.partition(":")
        if head != "gen" or not rest:
            raise ValueError(f"not a generated task id: {task_id!r}")
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, int | float] = {}
        for part in rest.split(":"):
            key, eq, value = part.partition("=")
            if not eq or key not in types or key in values:
                raise ValueError(f"bad setting {part!r} in {task_id!r}; known: {', '.join(types)}")
            try:
                values[key] = float(value) if types[key] == "float" else int(value)
            except ValueError:
                raise ValueError(f"bad value in {part!r} of {task_id!r}") from None
        if "seed" not in values:
            raise ValueError(f"generated task id needs a seed: {task_id!r}")
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GeneratedWorld:
    book: RecipeBook
    goal: str  # item id


class _Builder:
    """Grows one world top-down; every item gets exactly one recipe, so its depth is exact."""

    def __init__(self, spec: GenSpec):
        self.spec = spec
        # the tree ignores `distractors`, so that knob adds noise to the very same tree
        self.rng = random.Random(f"textcraft-generator:{replace(spec, distractors=0).task_id()}")
        self.used: set[str] = set()
        self.recipes: list[Recipe] = []
        self.by_depth: dict[int, list[str]] = {}  # item ids made so far, per depth (for reuse)
        self.tags: set[str] = set()  # tag kinds made so far (one tag per kind)

    def name(self, nouns: tuple[str, ...]) -> str:
        for _ in range(40):
            candidate = f"{self.rng.choice(MATERIALS)} {self.rng.choice(nouns)}"
            if candidate not in self.used:
                break
        else:  # a crowded world: qualify the name until it is new
            while candidate in self.used:
                candidate = f"{self.rng.choice(ADJECTIVES)} {candidate}"
        self.used.add(candidate)
        return candidate

    def amount(self) -> int:
        """An input count: 1 half the time (as in most real recipes), else up to `count`."""
        return 1 if self.rng.random() < 0.5 else self.rng.randint(1, self.spec.count)

    def yield_count(self, demand: int) -> int:
        """Mostly exactly what the first consumer takes per craft (like 4 planks for 4 planks), so
        the number of crafts does not multiply down the tree; sometimes 1-4."""
        return demand if self.rng.random() < 0.7 else self.rng.randint(1, 4)

    def item(self, depth: int, demand: int) -> str:
        """An item id of exactly `depth`: reused from this world now and then, else new."""
        pool = self.by_depth.get(depth, [])
        if pool and self.rng.random() < (0.4 if depth == 0 else 0.2):
            return self.rng.choice(pool)
        nouns = BASE_NOUNS if depth == 0 else PART_NOUNS if depth < self.spec.depth else TOP_NOUNS
        new = item_id(self.name(nouns))
        if depth > 0:
            self.add_recipe(new, depth, demand)
        self.by_depth.setdefault(depth, []).append(new)
        return new

    def add_recipe(self, output: str, depth: int, demand: int) -> None:
        k = self.rng.randint(1, self.spec.fanin)
        # one input pins the depth; the others are shallower on average (min of two draws)
        depths = [depth - 1]
        depths += [min(self.rng.randint(0, depth - 1), self.rng.randint(0, depth - 1)) for _ in range(k - 1)]
        inputs: dict[str, Ingredient] = {}
        for d in depths:
            ing = self.ingredient(d)
            inputs.setdefault(ing.name, ing)
        self.recipes.append(Recipe(output, self.yield_count(demand), tuple(inputs.values()), None, "generated"))

    def ingredient(self, depth: int) -> Ingredient:
        amount = self.amount()
        if depth == 1 and self.rng.random() < self.spec.tags:
            return Ingredient(self.tag(amount), amount, is_tag=True)
        return Ingredient(self.item(depth, amount), amount)

    def tag(self, demand: int) -> str:
        """A tag of 2-3 depth-1 members, each crafted from its own base item (like planks from logs)."""
        kind, base_noun = self.rng.choice(TAG_KINDS)
        tag_id = item_id(kind + "s")
        if kind not in self.tags:
            self.tags.add(kind)
            for material in self.rng.sample(MATERIALS, self.rng.randint(2, 3)):
                member, base = f"{material} {kind}", f"{material} {base_noun}"
                self.used.update((member, base))
                inputs = (Ingredient(item_id(base), 1),)
                self.recipes.append(Recipe(item_id(member), self.yield_count(demand), inputs, tag_id, "generated"))
                self.by_depth.setdefault(0, []).append(item_id(base))
        return tag_id

    def distractors(self) -> None:
        """Recipes for new top items that consume the goal tree's items: plausible but useless."""
        self.rng = random.Random(f"textcraft-generator:{self.spec.task_id()}:distractors")
        tree_items = sorted({ing.name for r in self.recipes for ing in r.inputs})
        for _ in range(self.spec.distractors):
            output = item_id(self.name(TOP_NOUNS + PART_NOUNS))
            k = self.rng.randint(1, self.spec.fanin)
            names = self.rng.sample(tree_items, min(k, len(tree_items)))
            tag_ids = {item_id(kind + "s") for kind in self.tags}
            inputs = tuple(Ingredient(n, self.amount(), is_tag=n in tag_ids) for n in names)
            self.recipes.append(Recipe(output, self.yield_count(1), inputs, None, "generated"))


def generate(spec: GenSpec) -> GeneratedWorld:
    """Build the world of `spec`; deterministic in `spec` alone."""
    builder = _Builder(spec)
    goal = builder.item(spec.depth, 1)
    builder.distractors()
    book = RecipeBook.build(builder.recipes)
    if book.skipped or book.depth(goal) != spec.depth:  # construction guarantees both; fail loudly if not
        raise RuntimeError(f"generator invariant broken for {spec.task_id()}")
    return GeneratedWorld(book, goal)

"""The recipe book: items, tags, accepted recipes and crafting depth, whatever the recipes' source.

Both task sources (the real Minecraft recipe files and the procedural generator) feed candidate
recipes into `RecipeBook.build`, which applies the same rules to both:

- a candidate whose output is already among the transitive inputs of one of its inputs would close
  a cycle and is skipped, so the accepted recipes form a DAG (order matters: the first recipe wins);
- a recipe's group becomes a *tag* (`minecraft:planks`) whose members are the group's outputs; a tag
  that no craftable item belongs to is demoted to a plain base item (`oak logs` can be fetched);
- depth: a base item is 0; an item's depth is the min over its recipes of the max input depth + 1
  (a tag's depth is the min over its members' recipes).

Item ids keep the Minecraft form (`minecraft:blue_dye`); players see and type display names
(`blue dye`), exactly as the original TextCraft does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

NAMESPACE = "minecraft:"


def display_name(item_id: str) -> str:
    """`minecraft:blue_dye` -> `blue dye` (what the player reads and types)."""
    return item_id.removeprefix(NAMESPACE).replace("_", " ")


def item_id(name: str) -> str:
    """`blue dye` -> `minecraft:blue_dye` (the inverse of `display_name`)."""
    return NAMESPACE + name.strip().replace(" ", "_")


@dataclass(frozen=True)
class Ingredient:
    """One input slot of a recipe: `count` of an item, or of any member of a tag."""

    name: str  # an item id, or a tag id when is_tag
    count: int
    is_tag: bool = False


@dataclass(frozen=True)
class Recipe:
    """`inputs` -> `count` x `output`. `group` is the tag the output belongs to (None: no tag)."""

    output: str
    count: int
    inputs: tuple[Ingredient, ...]
    group: str | None = None
    source: str = ""  # where it came from (a file name, or "generated"); for error messages

    def text(self) -> str:
        """The crafting command as shown to the player: `craft 4 oak planks using 1 oak logs`."""
        parts = ", ".join(f"{i.count} {display_name(i.name)}" for i in self.inputs)
        return f"craft {self.count} {display_name(self.output)} using {parts}"


@dataclass
class RecipeBook:
    """Accepted recipes plus the item/tag vocabulary. Build it with `RecipeBook.build`."""

    recipes: dict[str, list[Recipe]] = field(default_factory=dict)  # output item id -> recipes
    tag_recipes: dict[str, list[Recipe]] = field(default_factory=dict)  # tag id -> its members' recipes
    item_tag: dict[str, str] = field(default_factory=dict)  # item id -> the tag it belongs to
    tags: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)  # every known item id (crafted, fetched or used)
    skipped: list[Recipe] = field(default_factory=list)  # candidates dropped because they close a cycle
    _depth: dict[str, int] = field(default_factory=dict, repr=False)
    _uses: dict[str, list[Recipe]] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, candidates: Iterable[Recipe], extra_items: Iterable[str] = ()) -> RecipeBook:
        """Accept candidates in order, skipping those that would create a cycle; then settle tags.

        `extra_items` are ids known to the world without being a recipe's input or output (the
        outputs of recipes a loader dropped before building, which stay fetchable).
        """
        book = cls()
        book.items.update(extra_items)
        closure: dict[str, set[str]] = {}  # item -> every name it is (transitively) made from
        for recipe in candidates:
            book.items.add(recipe.output)
            for ing in recipe.inputs:
                (book.tags if ing.is_tag else book.items).add(ing.name)
            if recipe.group is not None and recipe.group != recipe.output:
                book.tags.add(recipe.group)
                book.item_tag[recipe.output] = recipe.group
            if any(recipe.output == ing.name or recipe.output in closure.get(ing.name, ()) for ing in recipe.inputs):
                book.skipped.append(recipe)
                continue
            book.recipes.setdefault(recipe.output, []).append(recipe)
            if recipe.group is not None and recipe.group != recipe.output:
                book.tag_recipes.setdefault(recipe.group, []).append(recipe)
            made_from = closure.setdefault(recipe.output, set())
            for ing in recipe.inputs:
                made_from.add(ing.name)
                made_from.update(closure.get(ing.name, ()))
        book._demote_uncraftable_tags()
        return book

    def _demote_uncraftable_tags(self) -> None:
        """A tag with no craftable member cannot be satisfied by crafting: treat it as a base item."""
        craftable_tags = {tag for item, tag in self.item_tag.items() if item in self.recipes}
        dead = {ing.name for rs in self.recipes.values() for r in rs for ing in r.inputs if ing.is_tag}
        dead -= craftable_tags
        if not dead:
            return
        for output, rs in self.recipes.items():
            self.recipes[output] = [self._untag(r, dead) for r in rs]
        for tag, rs in self.tag_recipes.items():
            self.tag_recipes[tag] = [self._untag(r, dead) for r in rs]
        self.tags -= dead
        self.items |= dead

    @staticmethod
    def _untag(recipe: Recipe, dead: set[str]) -> Recipe:
        if not any(ing.is_tag and ing.name in dead for ing in recipe.inputs):
            return recipe
        inputs = tuple(Ingredient(i.name, i.count, i.is_tag and i.name not in dead) for i in recipe.inputs)
        return Recipe(recipe.output, recipe.count, inputs, recipe.group, recipe.source)

    # --- queries -------------------------------------------------------------------------------

    def is_tag(self, name: str) -> bool:
        return name in self.tags

    def is_craftable(self, name: str) -> bool:
        """An item with a recipe, or a tag with a member recipe."""
        return name in self.recipes or name in self.tag_recipes

    def is_base(self, name: str) -> bool:
        """A known item with no recipe: the only kind `get` hands out."""
        return name in self.items and not self.is_tag(name) and not self.is_craftable(name)

    def goals(self) -> list[str]:
        """Every craftable item (the possible goals), in recipe order."""
        return list(self.recipes)

    def members(self, tag: str) -> list[str]:
        """Items that satisfy `tag`, sorted by name."""
        return sorted(item for item, t in self.item_tag.items() if t == tag)

    def satisfies(self, item: str, ingredient: Ingredient) -> bool:
        """Whether holding `item` fills this input slot (the item itself, or a member of the tag)."""
        if ingredient.is_tag:
            return item == ingredient.name or self.item_tag.get(item) == ingredient.name
        return item == ingredient.name

    def depth(self, name: str) -> int:
        """Minimum crafting depth of an item or tag (0 for base items)."""
        if name not in self._depth:
            recipes = self.recipes.get(name) or self.tag_recipes.get(name)
            if not recipes:
                self._depth[name] = 0
            else:
                self._depth[name] = -1  # in progress: a revisit means a cycle the build let through
                self._depth[name] = min(self.recipe_depth(r) for r in recipes)
        if self._depth[name] < 0:
            raise ValueError(f"recipe cycle through {name}")
        return self._depth[name]

    def recipe_depth(self, recipe: Recipe) -> int:
        return max(self.depth(ing.name) + 1 for ing in recipe.inputs)

    def uses(self, name: str) -> list[Recipe]:
        """Recipes that take `name` (an item or a tag) as an input, in book order."""
        if self._uses is None:
            self._uses = {}
            for rs in self.recipes.values():
                for r in rs:
                    for ing in r.inputs:
                        self._uses.setdefault(ing.name, []).append(r)
        return self._uses.get(name, [])

    def recipe_tree(self, goal: str) -> list[Recipe]:
        """Every recipe that can take part in crafting `goal`: its recipes and, recursively, those
        of their inputs (a tag input brings the recipes of all its members). Depth-first, deduplicated."""
        seen: set[str] = set()
        out: list[Recipe] = []

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for r in self.recipes.get(name) or self.tag_recipes.get(name) or []:
                out.append(r)
                for ing in r.inputs:
                    visit(ing.name)

        visit(goal)
        return out

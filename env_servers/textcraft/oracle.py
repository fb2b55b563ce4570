"""The expert: a recipe-tree solver that plans from whatever the player holds now.

`plan` walks the goal's recipe tree depth first: for each item still missing it picks the
shallowest recipe, obtains `crafts x count` of every input (a tag input takes a member already held
in quantity, else the shallowest member), then crafts. Base items are fetched in exactly the
amount missing. Inputs already gathered for a recipe are set aside while its other inputs are
made, so one sub-craft never eats another's ingredients. Choosing min-depth recipes and members
makes the recursion strictly descend in depth, so it always ends, and it solves every goal of an
acyclic book. Planning afresh at each step (cheap: a few dozen actions) keeps the expert correct
even after the agent wandered off its plan.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from math import ceil

from gymwire.env_servers.textcraft.book import Ingredient, Recipe, RecipeBook, display_name


@dataclass(frozen=True)
class PlannedAction:
    action: str  # the action text, e.g. `get 3 oak logs`
    reason: str  # a short thought that explains it, for demonstrations

    def turn(self) -> str:
        """The action as a model turn in the env's format."""
        return f"Thought: {self.reason} Action: {self.action}"


class _Planner:
    def __init__(self, book: RecipeBook, inventory: dict[str, int]):
        self.book = book
        self.inv: Counter[str] = Counter(inventory)
        self.actions: list[PlannedAction] = []

    def obtain(self, item: str, count: int, purpose: str) -> None:
        missing = count - self.inv[item]
        if missing <= 0:
            return
        if self.book.is_base(item):
            reason = f"{display_name(item)} is a base item and I need {count} for {purpose}."
            self.actions.append(PlannedAction(f"get {missing} {display_name(item)}", reason))
            self.inv[item] += missing
            return
        recipe = self.best_recipe(item)
        crafts = ceil(missing / recipe.count)
        reserved: Counter[str] = Counter()
        used: list[tuple[str, int]] = []
        for ing in recipe.inputs:
            total = ing.count * crafts
            name = self.choose(ing, total)
            self.obtain(name, total, display_name(item))
            self.inv[name] -= total  # set aside until this recipe is crafted
            reserved[name] += total
            used.append((name, ing.count))
        self.inv.update(reserved)
        inputs = ", ".join(f"{n} {display_name(name)}" for name, n in used)
        action = f"craft {recipe.count} {display_name(item)} using {inputs}"
        for i in range(crafts):
            left = f" ({crafts - i} crafts to go)" if crafts - i > 1 else ""
            reason = f"I have the ingredients for {display_name(item)}, which I need for {purpose}{left}."
            self.actions.append(PlannedAction(action, reason))
            for name, n in used:
                self.inv[name] -= n
            self.inv[item] += recipe.count

    def best_recipe(self, item: str) -> Recipe:
        return min(self.book.recipes[item], key=self.book.recipe_depth)  # min keeps book order on ties

    def choose(self, ing: Ingredient, total: int) -> str:
        """The concrete item for an input slot: the item itself, or one member of the tag."""
        if not ing.is_tag:
            return ing.name
        members = self.book.members(ing.name)
        held = [m for m in members if self.inv[m] >= total]
        if held:
            return max(held, key=lambda m: self.inv[m])
        return min(members, key=lambda m: (self.book.depth(m), -self.inv[m]))


def plan(book: RecipeBook, goal: str, inventory: dict[str, int]) -> list[PlannedAction]:
    """Actions that craft `goal` starting from `inventory` (empty when it is already held)."""
    planner = _Planner(book, inventory)
    planner.obtain(goal, planner.inv[goal] + 1, "the goal")
    return planner.actions

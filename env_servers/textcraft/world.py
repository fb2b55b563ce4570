"""The TextCraft game: an inventory, three actions, and the original's reply strings.

Grammar (checked in this order, first match wins; the action is lower-cased, spaces collapsed and a
trailing period dropped before matching):

    craft <n> <item> using <n> <a>, <n> <b>, ...   the output count typed is ignored; the input
                                                   counts must equal one of the item's recipes
    get <n> <item>                                 base items only (no recipe), any amount n >= 1
    inventory

Replies keep the original TextCraft strings (`Got 1 lapis lazuli`, `Crafted 1 minecraft:blue_dye`,
`Could not find blue dye`, `Could not find enough items to craft minecraft:light_blue_dye`,
`Inventory: [blue dye] (1) `, `Inventory: You are not carrying anything.`, `Could not execute <action>`),
so prompts and demonstrations written for it still apply. Two replies differ on purpose: a
craft whose inputs match no recipe says `Could not find a valid recipe for <item id>` (the original
printed a Python object), and `get 0 <item>` is refused with `Could not execute ...` (the original
added an empty stack to the inventory).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gymwire.env_servers.sdk.actions import extract_action as extract_action  # the SDK's defaults are this grammar's
from gymwire.env_servers.textcraft.book import Recipe, RecipeBook, display_name, item_id

_CRAFT = re.compile(r"craft (.+?) using (.+)")
_GET = re.compile(r"get (\d{1,6}) (.+)")
_INVENTORY = re.compile(r"inventory")
_COUNTED = re.compile(r"(\d{1,6}) (.+)")


@dataclass(frozen=True)
class Reply:
    """What one action did: the observation text, whether it succeeded, whether it made the goal."""

    message: str
    ok: bool
    goal_crafted: bool = False


class CraftingWorld:
    """One player's inventory in one recipe book, working towards one goal item."""

    def __init__(self, book: RecipeBook, goal: str):
        if goal not in book.recipes:
            raise ValueError(f"{goal} has no recipe, so it cannot be a goal")
        self.book = book
        self.goal = goal
        self.inventory: dict[str, int] = {}  # item id -> count, in the order first obtained

    def act(self, action: str) -> Reply:
        """Apply one normalised action (see `extract_action`)."""
        if m := _CRAFT.fullmatch(action):
            return self._craft(m.group(1), m.group(2))
        if m := _GET.fullmatch(action):
            return self._get(int(m.group(1)), m.group(2), action)
        if _INVENTORY.fullmatch(action):
            return Reply(self.describe_inventory(), ok=True)
        return Reply(f"Could not execute {action}", ok=False)

    def describe_inventory(self) -> str:
        if not self.inventory:
            return "Inventory: You are not carrying anything."
        return "Inventory: " + "".join(f"[{display_name(i)}] ({n}) " for i, n in self.inventory.items())

    def _get(self, amount: int, name: str, action: str) -> Reply:
        if amount < 1:
            return Reply(f"Could not execute {action}", ok=False)
        wanted = item_id(name)
        if not self.book.is_base(wanted):
            return Reply(f"Could not find {name}", ok=False)
        self._add(wanted, amount)
        return Reply(f"Got {amount} {name}", ok=True)

    def _craft(self, output_part: str, inputs_part: str) -> Reply:
        m = _COUNTED.fullmatch(output_part)
        output = item_id(m.group(2) if m else output_part)  # the typed output count does not matter
        typed: list[tuple[str, int]] = []
        for part in inputs_part.split(","):
            part = part.strip()
            m = _COUNTED.fullmatch(part)
            if m is None:
                return Reply(f"Wrong item format: {part}", ok=False)
            typed.append((item_id(m.group(2)), int(m.group(1))))
        needed: dict[str, int] = {}
        for name, n in typed:
            needed[name] = needed.get(name, 0) + n
        if any(self.inventory.get(name, 0) < n for name, n in needed.items()):
            return Reply(f"Could not find enough items to craft {output}", ok=False)
        recipe = next((r for r in self.book.recipes.get(output, []) if self._matches(r, typed)), None)
        if recipe is None:
            return Reply(f"Could not find a valid recipe for {output}", ok=False)
        for name, n in needed.items():
            self.inventory[name] -= n
            if self.inventory[name] == 0:
                del self.inventory[name]
        self._add(output, recipe.count)
        return Reply(f"Crafted {recipe.count} {output}", ok=True, goal_crafted=output == self.goal)

    def _matches(self, recipe: Recipe, typed: list[tuple[str, int]]) -> bool:
        """Each recipe input is filled by exactly one typed input with the same count; none left over."""
        left = list(typed)
        for ing in recipe.inputs:
            slot = next((t for t in left if t[1] == ing.count and self.book.satisfies(t[0], ing)), None)
            if slot is None:
                return False
            left.remove(slot)
        return not left

    def _add(self, item: str, amount: int) -> None:
        self.inventory[item] = self.inventory.get(item, 0) + amount

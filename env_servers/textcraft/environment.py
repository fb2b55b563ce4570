"""TextCraft as a gymwire `Environment`: Minecraft-style crafting from a list of recipes.

The agent reads the crafting commands and the goal, then fetches base items and crafts up the
recipe tree. Reward 1 (and the episode ends) when the goal item is crafted, else 0. Tasks come from
the real Minecraft recipes shipped in the `textcraft` package (or a user's folder) and from the
procedural generator; see tasks.py for ids, tiers and splits.

No `committed`/`verified` in `info` (the SDK's commit signals): crafting the goal ends the episode
with success and nothing else ends it, so no action stakes the task on an unchecked guess.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from gymwire.env_servers.sdk import (
    EnvDescription,
    Environment,
    Episode,
    StepOutcome,
    Task,
    TaskCatalogue,
    UnknownTask,
    hash_state,
)
from gymwire.env_servers.textcraft.book import RecipeBook
from gymwire.env_servers.textcraft.generator import GeneratedWorld, GenSpec, generate
from gymwire.env_servers.textcraft.observation import initial_observation
from gymwire.env_servers.textcraft.oracle import plan
from gymwire.env_servers.textcraft.recipes import load_recipe_book
from gymwire.env_servers.textcraft.tasks import DEFAULT_TIERS, RealGoal, TaskIds
from gymwire.env_servers.textcraft.world import CraftingWorld, extract_action

VERSION = "1.0.0"

INSTRUCTION = """\
You are in a Minecraft-like world and must craft one goal item. The first message lists crafting \
commands (some are not needed) and the goal. Items without a crafting command are base items that \
you can take in any amount; everything else must be crafted, and a crafted item can be an \
ingredient of another. An ingredient named by a group, such as "planks", accepts any item of that \
group, such as "oak planks": always name the exact item you hold.

Actions:
- get <n> <item>: take n of a base item, e.g. get 2 lapis lazuli
- craft <n> <item> using <n> <ingredient>, <n> <ingredient>: craft with one of the listed commands; \
the ingredient counts must be exactly those of the command, e.g. craft 1 blue dye using 1 lapis lazuli
- inventory: list what you carry

Each turn, think briefly and then give exactly one action, in the form:
Thought: <your reasoning>
Action: <one action>

The task ends when you craft the goal item."""

ACTION_GRAMMAR = (
    "One action per turn, after 'Action:' (text before it is ignored): "
    "'get <n> <item>' (base items), "
    "'craft <n> <item> using <n> <ingredient>, <n> <ingredient>, ...' (ingredient counts exactly as listed), "
    "or 'inventory'."
)


class TextCraftEpisode(Episode):
    """One crafting episode: the first observation is fixed at creation, the world evolves with steps."""

    def __init__(self, book: RecipeBook, goal: str, first_observation: str):
        self.world = CraftingWorld(book, goal)
        self.first_observation = first_observation
        self.done = False

    def reset(self) -> str:
        return self.first_observation

    def step(self, text: str) -> StepOutcome:
        action = extract_action(text)
        reply = self.world.act(action)
        self.done = self.done or reply.goal_crafted
        return StepOutcome(
            observation=reply.message,
            reward=1.0 if reply.goal_crafted else 0.0,
            terminated=reply.goal_crafted,
            success=reply.goal_crafted,
            action_valid=reply.ok,
            parsed_action=action,
        )

    def state_key(self) -> str:
        """The inventory as counts per item, and whether the goal was crafted. The order in which items
        were first obtained, which only orders the `inventory` listing, is left out: the same items
        reached in another order can be used in the same ways."""
        return hash_state({"inventory": sorted(self.world.inventory.items()), "done": self.done})

    def expert_action(self) -> str | None:
        """The oracle's next turn, `Thought: ... Action: ...`, planned from the current inventory."""
        if self.done:
            return None
        steps = plan(self.world.book, self.world.goal, self.world.inventory)
        return steps[0].turn() if steps else None


class TextCraftEnvironment(Environment):
    """TextCraft over the real recipes plus generated worlds.

    recipe_dir: a folder of Minecraft recipe JSONs (or its parent holding `recipes/`); default: the
        recipes inside the installed `textcraft` package.
    tiers: difficulty name -> (min depth, max depth); depths outside every range take the nearest.
    generated_depths / generated_per_depth: which generated tasks the listing shows (seeds
        0..n-1 per depth); set generated_per_depth=0 to list only the real goals.
    test_percent: share of tasks (by stable hash) in the test split.
    max_distractors: distractor recipes shown for real goals (generated ones show their spec's count).
    """

    def __init__(
        self,
        recipe_dir: str | Path | None = None,
        *,
        tiers: Mapping[str, tuple[int, int]] = DEFAULT_TIERS,
        generated_depths: Sequence[int] = (1, 2, 3, 4),
        generated_per_depth: int = 200,
        test_percent: int = 20,
        max_distractors: int = 10,
    ):
        self.book = load_recipe_book(recipe_dir)
        self.ids = TaskIds(self.book, tiers, test_percent)
        self.max_distractors = max_distractors
        self._catalogue = self.ids.catalogue(generated_depths, generated_per_depth)

    def describe(self) -> EnvDescription:
        return EnvDescription(
            name="textcraft",
            version=VERSION,
            description=(
                "Minecraft-style crafting from text: fetch base items and craft up a recipe tree to the goal. "
                f"{len(self.book.recipes)} real goals from Minecraft 1.16 recipes (depth 1-4) plus "
                "procedurally generated worlds of any depth."
            ),
            instruction=INSTRUCTION,
            action_grammar=ACTION_GRAMMAR,
            provides_valid_actions=False,
            provides_expert=True,
            default_max_turns=30,
            max_turns_limit=200,
        )

    def catalogue(self) -> TaskCatalogue:
        return self._catalogue

    def start(self, task: Task) -> TextCraftEpisode:
        parsed = self.ids.parse(task.id)
        if isinstance(parsed, RealGoal):
            book, goal, cap = self.book, parsed.goal, self.max_distractors
            seed = f"textcraft:minecraft:{goal}"  # by goal, so `textcraft-<i>` and `goal:` ids agree
        elif isinstance(parsed, GenSpec):
            world = _generated(parsed)
            book, goal, cap = world.book, world.goal, parsed.distractors
            seed = f"textcraft:{parsed.task_id()}"
        else:
            raise UnknownTask(task.id)
        observation = initial_observation(book, goal, random.Random(seed), cap)
        return TextCraftEpisode(book, goal, observation)


@lru_cache(maxsize=256)
def _generated(spec: GenSpec) -> GeneratedWorld:
    """Worlds are cheap but not free (~ms); GRPO groups reset the same task many times."""
    return generate(spec)

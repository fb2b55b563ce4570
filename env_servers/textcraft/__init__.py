"""TextCraft: Minecraft-style crafting from text, over the real recipes and generated worlds.

Modules: book (recipe model, tags, depth), recipes (reading Minecraft JSON), generator (invented
worlds), world (the game and its parser), observation (the first message), oracle (the expert),
tasks (ids, tiers, splits), environment (the gymwire `Environment`).
"""

from gymwire.env_servers.textcraft.environment import TextCraftEnvironment

__all__ = ["TextCraftEnvironment"]

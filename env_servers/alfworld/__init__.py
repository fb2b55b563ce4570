"""ALFWorld: household tasks from text, on our own simulator or on the original games.

Modules: assets (the `alfworld` wheel's tables, layouts, goal templates, domain and grammar, read
from the installed package), names (ALFWorld's instance naming), scenes (the 120 ALFRED rooms),
world (state and the PDDL domain's rules), text (ALFWorld's replies and our two wordings), parser
(turn -> command), goals (the six task types), generator (rooms and goals from seeds), expert (the
hand-coded expert's strategy), tasks (ids, tiers, splits), pddl_export (our rooms as ALFWorld game
files), real_data (original games through `alfworld` + `textworld`), environment (the gymwire
`Environment`).
"""

from gymwire.env_servers.alfworld.environment import ALFWorldEnvironment

__all__ = ["ALFWorldEnvironment"]

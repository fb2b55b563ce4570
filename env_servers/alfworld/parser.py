"""From the agent's raw turn to a canonical ALFWorld command.

The action is the first non-empty line after the last `Action:` of the turn (the whole turn when it
has none), lower-cased, with single spaces and no surrounding quotes, backticks or trailing period.
Placing is accepted in 0.3's form (`put mug 1 in/on desk 1`, also `put ... in|on|into ...`) and in
0.4's (`move mug 1 to desk 1`) and rewritten to the wording's own form, so that both match the
admissible list. Everything else is compared with the admissible commands as it stands.
"""

from __future__ import annotations

import re

from gymwire.env_servers.alfworld.text import Wording
from gymwire.env_servers.sdk.actions import extract_action as extract_action  # the SDK's defaults are this grammar's

_PUT = re.compile(r"put (\S+ \d+) (?:in/on|in|on|into) (\S+ \d+)")
_MOVE = re.compile(r"move (\S+ \d+) to (\S+ \d+)")


def canonical(action: str, wording: Wording) -> str:
    """`action` (already extracted) in the wording's form of the admissible commands."""
    m = _PUT.fullmatch(action) or _MOVE.fullmatch(action)
    if m:
        return wording.put_command.format(o=m.group(1), r=m.group(2))
    return action

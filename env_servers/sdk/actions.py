"""Reading the action out of an agent's raw turn, the convention the text environments share.

Prompts ask for `Thought: <reasoning>` then `Action: <one action>`. The action is the first non-empty
line after the last `Action:` marker (any case; the whole turn when it has none): models often
mention "action:" while thinking, and keep talking after the action. How much of the line is then
normalised belongs to each grammar, hence the keyword arguments.
"""

from __future__ import annotations

import re
import string

ACTION_MARKER = re.compile(r"\baction\s*:", re.IGNORECASE)


def action_line(turn: str) -> str:
    """The first non-empty line after the last `Action:` in `turn` (or of the whole turn), stripped."""
    markers = list(ACTION_MARKER.finditer(turn))
    rest = turn[markers[-1].end() :] if markers else turn
    return next((line.strip() for line in rest.splitlines() if line.strip()), "")


def extract_action(turn: str, *, fold: bool = True, wrappers: str = "`'\"", trailing: str = ".") -> str:
    """The action in a raw turn such as `Thought: the key is ahead.\\nAction: Pick up the key.`.

    fold: lower-case and collapse runs of whitespace (for grammars compared case-insensitively).
    wrappers: characters stripped from both ends, such as quotes and backticks around the action.
    trailing: punctuation dropped from the end, such as the full stop that ends a sentence.
    """
    line = action_line(turn)
    if fold:
        line = " ".join(line.lower().split())
    strip = wrappers + string.whitespace
    line = line.strip(strip)
    return line.rstrip(trailing).strip(strip) if trailing else line

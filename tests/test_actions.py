"""The SDK's reading of `Action: ...` out of a raw agent turn, shared by the text environments."""

from __future__ import annotations

import pytest

from gymwire.env_servers.sdk import action_line, extract_action


@pytest.mark.parametrize(
    ("turn", "line"),
    [
        ("Thought: the key is ahead.\nAction: Go To Red Key 1\nObservation: ...", "Go To Red Key 1"),
        ("Thought: Action: look would help. Action: open fridge 1", "open fridge 1"),  # the last marker counts
        ("ACTION :\n\n  take mug 1  \nmore", "take mug 1"),  # first non-empty line after it
        ("Thought: my reaction: wait\nAction: drop", "drop"),  # a word ending in "action" is no marker
        ("Thought: my reaction: wait", "Thought: my reaction: wait"),
        ("\n  inventory\nThought: none", "inventory"),  # no marker: the whole turn's first line
        ("Action:", ""),
        ("", ""),
    ],
)
def test_action_line(turn: str, line: str) -> None:
    assert action_line(turn) == line


@pytest.mark.parametrize(
    ("turn", "action"),
    [
        ("Thought: hmm.\nAction: Go To  Cabinet 1.", "go to cabinet 1"),
        ("action: `inventory`", "inventory"),
        ('Action: "get 1 lapis lazuli".', "get 1 lapis lazuli"),
        ("Action: \t'look'\t", "look"),
        ("Thought: no idea", "thought: no idea"),
    ],
)
def test_extract_action_defaults(turn: str, action: str) -> None:
    assert extract_action(turn) == action


def test_extract_action_options() -> None:
    turn = "Thought: buy.\nAction:  `click[Buy  Now]`.  \n"
    assert extract_action(turn, fold=False, trailing="") == "click[Buy  Now]`."
    assert extract_action(turn, fold=False) == "click[Buy  Now]"
    assert extract_action("Action: **drop**!", wrappers="*", trailing="!.") == "drop"
    assert extract_action("Action: drop!!", trailing="") == "drop!!"

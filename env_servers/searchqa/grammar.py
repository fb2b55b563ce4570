"""The action grammar, answer scoring and the fixed reply strings.

Grammar (as in Search-R1 and AgentGym's SearchQA): a turn holds `<search>query</search>` or
`<answer>text</answer>`; the first complete pair of either tag counts (tags are lower case, the
content may span lines and is stripped), all other text is ignored. A turn without a complete pair
is invalid. Unlike the originals, an empty tag (`<search> </search>`) is also invalid: searching for
nothing or answering nothing is never what the agent meant.

Scoring: exact match after SQuAD normalisation (lower case, punctuation removed, the articles a/an/the
removed, whitespace collapsed) against any gold answer.

The invalid-turn, correct and retry replies are AgentGym's strings, so prompts and demonstrations
written for it still apply.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from dataclasses import dataclass

_TAG = re.compile(r"<(search|answer)>(.*?)</\1>", re.DOTALL)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)

INVALID = (
    "Your previous action is invalid. If you want to search, you should put the query between <search> "
    "and </search>. If you want to give the final answer, you should put the answer between <answer> and "
    "</answer>. Please try again."
)
CORRECT = "Congratulations! You have answered the question correctly."
WRONG_RETRY = "Sorry, your answer is incorrect. Please try again."
WRONG_FINAL = "Sorry, your answer is incorrect."
NO_MATCH = "No passage matched the query."


def empty_tag(kind: str) -> str:
    what = "query" if kind == "search" else "answer"
    return f"Your <{kind}> tag is empty. Put the {what} between <{kind}> and </{kind}>."


@dataclass(frozen=True)
class Action:
    kind: str  # "search" | "answer"
    content: str  # stripped

    def __str__(self) -> str:
        return f"<{self.kind}>{self.content}</{self.kind}>"


def parse_turn(text: str) -> Action | None:
    """The first complete `<search>` or `<answer>` pair in a raw turn, or None."""
    match = _TAG.search(text)
    return Action(match.group(1), match.group(2).strip()) if match else None


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, drop punctuation, drop articles, collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: Iterable[str]) -> bool:
    guess = normalize_answer(prediction)
    return any(guess == normalize_answer(g) for g in golds)

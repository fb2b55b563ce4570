"""Failure tags over stored trajectories: why did an episode not succeed?

Generic rules apply to every environment; an environment adds its own in `ENV_RULES`. The
confirmation-bias proxy of the paper ("acting without verification") is `unverified_commit`: the
episode ended by the agent's own final action (buy, answer, ...) and was wrong, without the agent
having looked at anything first (its first action already committed), or, per env, without the
check that env needs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

from gymwire.trainer.types import Trajectory

_ACTION = re.compile(r"action\s*:\s*(.+)", re.IGNORECASE | re.DOTALL)


def actions_of(trajectory: Trajectory) -> list[str]:
    """The actions the agent wrote, one per assistant turn (text after the last 'Action:')."""
    out = []
    for m in trajectory.messages:
        if m["role"] != "assistant":
            continue
        matches = _ACTION.findall(m["content"])
        text = matches[-1] if matches else m["content"]
        out.append(" ".join(text.strip().lower().split())[:200])
    return out


def _loop(t: Trajectory) -> bool:
    acts = actions_of(t)
    return any(acts[i] == acts[i + 1] == acts[i + 2] for i in range(len(acts) - 2))


def _searchqa_no_search(t: Trajectory) -> bool:
    return t.terminated and not t.success and not any("<search>" in a for a in actions_of(t))


def _webshop_no_options(t: Trajectory) -> bool:
    acts = actions_of(t)
    return t.terminated and not t.success and acts and "buy now" in acts[-1] and sum("click[" in a for a in acts) <= 2


Rule = Callable[[Trajectory], bool]

GENERIC_RULES: dict[str, Rule] = {
    "aborted": lambda t: t.aborted,
    "turn_limit": lambda t: t.truncated and not t.success,
    "invalid_action": lambda t: not t.success and t.invalid_actions > 0 and t.invalid_actions * 2 >= max(t.turns, 1),
    "repeated_action_loop": _loop,
    "unverified_commit": lambda t: t.terminated and not t.success and t.turns <= 1,
    "wrong_target": lambda t: t.terminated and not t.success and t.turns > 1,
}

ENV_RULES: dict[str, dict[str, Rule]] = {
    "searchqa": {"unverified_commit": _searchqa_no_search},
    "webshop": {"unverified_commit": _webshop_no_options},
}


def tags(trajectory: Trajectory) -> list[str]:
    """All tags of one unsuccessful episode (empty for a success)."""
    if trajectory.success:
        return []
    rules = {**GENERIC_RULES, **ENV_RULES.get(trajectory.env, {})}
    found = [name for name, rule in rules.items() if rule(trajectory)]
    if "unverified_commit" in found and "wrong_target" in found:
        found.remove("wrong_target")
    return found or ["other"]


def tag_counts(trajectories: Iterable[Trajectory]) -> dict[str, Counter]:
    """Per env: how many failed episodes carry each tag (an episode may carry several)."""
    counts: dict[str, Counter] = {}
    for t in trajectories:
        counts.setdefault(t.env, Counter()).update(tags(t))
    return counts

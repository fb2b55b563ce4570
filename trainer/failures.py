"""Failure tags over stored trajectories: why did an episode not succeed?

Tags come from what the protocol says, never from the agent's raw text: the per-turn records
(`Trajectory.steps`: the action the server parsed, its validity, the end flags) and the signals an
environment declares in each step's `info` (the SDK's well-known keys `committed` and `verified`,
see `gymwire.env_servers.sdk.environment.StepOutcome`). So the same rules hold for every
environment, including ones written after this file.

Tags of a failed episode (an episode may carry several):

- `aborted`: lost to infrastructure (never scored).
- `turn_limit`: the server cut the episode at its turn limit (the last step is `truncated`).
- `cut_short`: the trainer stopped the episode (context full, or no turn could be generated).
- `invalid_action`: at least half of the turns were invalid (`action_valid` false).
- `repeated_action_loop`: the same parsed action on `LOOP_REPEATS` consecutive turns.
- `unverified_commit`: the agent committed (`committed`) without the check the environment asks for
  (`verified`): the paper's confirmation bias, acting without verification.
- `wrong_commit`: every commit was checked, and the episode still failed.
- `other`: none of the above.

A failed episode stored without per-turn records (files written before they existed) gets the single
tag `NO_RECORDS` rather than a guess.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from gymwire.env_servers.sdk.environment import INFO_COMMITTED, INFO_VERIFIED
from gymwire.trainer.types import StepRecord, Trajectory

LOOP_REPEATS = 3
NO_RECORDS = "no per-turn records"
TAGS = (
    "aborted",
    "turn_limit",
    "cut_short",
    "invalid_action",
    "repeated_action_loop",
    "unverified_commit",
    "wrong_commit",
    "other",
)


def _looped(steps: list[StepRecord]) -> bool:
    actions = [s.parsed_action for s in steps]
    return any(
        actions[i] and len(set(actions[i : i + LOOP_REPEATS])) == 1 for i in range(len(actions) - LOOP_REPEATS + 1)
    )


def commits(steps: list[StepRecord]) -> list[bool]:
    """One entry per committing step: whether it was checked. The step's own `verified` is the
    environment's judgement; without one, any earlier `verified: true` step counts."""
    out, checked = [], False
    for s in steps:
        if s.info.get(INFO_COMMITTED) is True:
            out.append(s.info[INFO_VERIFIED] is True if INFO_VERIFIED in s.info else checked)
        checked |= s.info.get(INFO_VERIFIED) is True
    return out


def tags(trajectory: Trajectory) -> list[str]:
    """All tags of one unsuccessful episode (empty for a success)."""
    t = trajectory
    if t.success:
        return []
    if t.aborted:
        return ["aborted"]
    if t.turns and not t.steps:
        return [NO_RECORDS]
    steps = t.steps
    found = []
    if steps and steps[-1].truncated:
        found.append("turn_limit")
    elif t.truncated:
        found.append("cut_short")
    if steps and 2 * sum(not s.action_valid for s in steps) >= len(steps):
        found.append("invalid_action")
    if _looped(steps):
        found.append("repeated_action_loop")
    checked = commits(steps)
    if checked:
        found.append("wrong_commit" if all(checked) else "unverified_commit")
    return found or ["other"]


def tag_counts(trajectories: Iterable[Trajectory]) -> dict[str, Counter]:
    """Per env: how many failed episodes carry each tag (an episode may carry several)."""
    counts: dict[str, Counter] = {}
    for t in trajectories:
        counts.setdefault(t.env, Counter()).update(tags(t))
    return counts

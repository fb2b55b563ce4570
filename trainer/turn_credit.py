"""Turn-level credit: GiGPO's two-level group-relative advantage (Feng et al., "Group-in-Group Policy
Optimization for LLM Agent Training", arXiv 2505.10978), from the environment's own state keys.

GRPO gives every turn of an episode the episode's advantage, so a wasted turn in a won episode is
rewarded like the winning one. GiGPO adds a second, step-level comparison inside each GRPO group:

- episode level (the paper's Eq. 3): A_E = (R - mean_group R) / (std_group R + eps), R the episode's
  return; exactly `grpo_loss.group_advantages` (std unbiased; centred only when scale_rewards is off);
- anchor groups (Eq. 6): the turns of one GRPO group's episodes taken from the same state, i.e. sharing
  (task_id, anchor) where the anchor (`StepRecord.anchor`) is the server's state key of the
  observation the turn acted from, or a hash of that observation's text when the server sends no key
  (the paper's anchor is the observation itself; a key also tells apart states whose texts are equal);
- step level (Eqs. 5 and 7): each turn's discounted return G_t = sum_k gamma^(k-t) r_k over the rest of
  its episode, normalised within its anchor group like the episode level; a group of one turn, or of
  equal returns, gives 0 (there is no comparison);
- each turn's advantage (Eq. 8): A_E + omega * A_S (`turn_weight`; GiGPO's omega = 1, gamma = 0.95).

As in the paper, a state visited twice in one episode puts both turns in its anchor group. Where this
differs from verl-agent's implementation: a GRPO group whose episode returns are all equal is not trained
on by GRPO (its advantages are all 0); here it is kept when some turn has a step-level advantage (counted
as `step_only_groups`) and skipped only when every turn's advantage is 0. A lone episode has episode
advantage 0 here (verl-agent gives it its raw return). A turn with no anchor (records written before
anchors existed) is its own anchor group. And the episode is one sequence here, each turn's sampled
tokens carrying that turn's advantage, where verl-agent trains each turn as its own sample.

Pure functions of the records; no torch, no I/O.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence

from gymwire.trainer.grpo_loss import Advantages, scored_groups
from gymwire.trainer.types import Trajectory

GIGPO_GAMMA = 0.95  # the paper's discount of the step-level return
GIGPO_WEIGHT = 1.0  # the paper's omega: the step-level advantage's weight


def discounted_returns(rewards: Sequence[float], gamma: float) -> list[float]:
    """G_t = r_t + gamma * G_(t+1): each turn's return over the rest of its episode (GiGPO Eq. 5)."""
    returns = [0.0] * len(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        returns[t] = running
    return returns


def relative(values: Sequence[float], *, scale: bool, eps: float) -> list[float]:
    """Group-relative values: centred on the group's mean, divided by its unbiased std + eps when `scale`;
    all 0 for a group of one or of equal values (nothing to compare)."""
    if len(values) < 2 or _all_close(values):
        return [0.0] * len(values)
    mean = math.fsum(values) / len(values)
    centred = [v - mean for v in values]
    if not scale:
        return centred
    std = statistics.stdev(values)
    return [c / (std + eps) for c in centred]


def turn_advantages(
    trajectories: Sequence[Trajectory],
    *,
    gamma: float = GIGPO_GAMMA,
    weight: float = GIGPO_WEIGHT,
    scale_rewards: bool = True,
    eps: float = 1e-4,
) -> Advantages:
    """Every kept episode with its episode advantage (`advantages`) and one advantage per turn
    (`turn_advantages`, in the order of its `steps`). Aborted episodes and groups with a non-finite reward
    are left out as in `group_advantages`; a group is skipped when every one of its turns' advantages is 0."""
    result = Advantages()
    for members in scored_groups(trajectories, result):
        rewards = [float(t.reward) for t in members]
        if not all(math.isfinite(r) for t in members for r in (t.reward, *(s.reward for s in t.steps))):
            result.nonfinite_groups += 1
            continue
        episode = relative(rewards, scale=scale_rewards, eps=eps)
        step, anchor_groups = _step_advantages(members, gamma=gamma, scale=scale_rewards, eps=eps)
        per_turn = [[a + weight * s for s in steps] for a, steps in zip(episode, step, strict=True)]
        if not any(a != 0.0 for turns in per_turn for a in turns):
            result.skipped_groups += 1
            continue
        if not any(episode):
            result.step_only_groups += 1
        result.anchor_groups += anchor_groups
        result.trajectories.extend(members)
        result.advantages.extend(episode)
        result.turn_advantages.extend(per_turn)
    return result


def _step_advantages(
    members: Sequence[Trajectory], *, gamma: float, scale: bool, eps: float
) -> tuple[list[list[float]], int]:
    """Per member, per turn: the turn's discounted return relative to its anchor group; and how many anchor
    groups hold two turns or more."""
    returns = [discounted_returns([s.reward for s in t.steps], gamma) for t in members]
    groups: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
    for m, traj in enumerate(members):
        for k, step in enumerate(traj.steps):
            # No anchor (an old record): a group of its own, so it compares with nothing.
            key = (traj.task_id, step.anchor) if step.anchor else ("", str(m), str(k))
            groups[key].append((m, k))
    advantages = [[0.0] * len(t.steps) for t in members]
    for turns in groups.values():
        values = relative([returns[m][k] for m, k in turns], scale=scale, eps=eps)
        for (m, k), value in zip(turns, values, strict=True):
            advantages[m][k] = value
    return advantages, sum(1 for turns in groups.values() if len(turns) > 1)


def token_advantages(traj: Trajectory, per_turn: Sequence[float]) -> tuple[list[float], list[float]]:
    """The advantages of `traj.token_ids` (each turn's sampled tokens carry their turn's, 0 elsewhere) and of
    its windowed turns. The sequence's loss-mask-1 tokens are its turns' tokens in order, as many per turn as
    its record's `generated_tokens`; with a history window the last turns are the `windowed_turns`."""
    name = f"trajectory {traj.task_id!r}/{traj.group_id!r}"
    if len(per_turn) != len(traj.steps):
        raise ValueError(f"{name}: {len(per_turn)} turn advantages for {len(traj.steps)} turns")
    inline = len(traj.steps) - len(traj.windowed_turns)
    sampled = [i for i, m in enumerate(traj.loss_mask) if m]
    counted = sum(s.generated_tokens for s in traj.steps[:inline]) if inline >= 0 else -1
    if counted != len(sampled):
        raise ValueError(
            f"{name}: turn-level advantages need one step record per turn whose generated_tokens match the "
            f"sequence ({len(sampled)} sampled tokens in token_ids, {len(traj.steps)} step records of which "
            f"{len(traj.windowed_turns)} windowed, counting {counted}); records without steps (written "
            "before they existed) can only be trained with grpo.advantage: episode"
        )
    values = [0.0] * len(traj.token_ids)
    at = 0
    for step, advantage in zip(traj.steps[:inline], per_turn, strict=False):
        for i in sampled[at : at + step.generated_tokens]:
            values[i] = advantage
        at += step.generated_tokens
    return values, list(per_turn[inline:])


def _all_close(values: Sequence[float]) -> bool:
    """As torch.allclose with its defaults, so equal rewards are skipped as group_advantages skips them."""
    first = values[0]
    return all(abs(v - first) <= 1e-8 + 1e-5 * abs(first) for v in values)

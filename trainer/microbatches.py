"""A step's episodes as padded micro-batches: what the loss runs on, and how it is weighted.

`build_plans` splits the step's trained episodes into `updates_per_step` mini-batches of whole
episodes (one optimizer step each) and each mini-batch into micro-batches packed to a token budget
(one forward and backward each). Every micro-batch carries per-token weights, so that the weighted
losses of a mini-batch's micro-batches sum to that mini-batch's normalised loss whatever the packing.
Tensors only; no model, no optimizer.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gymwire.trainer.grpo_loss import Advantages
from gymwire.trainer.shared_prefix import shared_length
from gymwire.trainer.turn_credit import token_advantages
from gymwire.trainer.types import Trajectory, TurnSample


def pack_microbatches(lengths: Sequence[int], token_budget: int, keys: Sequence[int] | None = None) -> list[list[int]]:
    """Indices grouped so that (sequences x longest) <= token_budget; a longer sequence rides alone.

    Longest first, so sequences of similar length share a micro-batch and padding stays small;
    with `keys` (a GRPO group per sequence), sequences of one key first, so that a micro-batch's
    rows start with the same prompt.
    """
    order = sorted(range(len(lengths)), key=lambda i: (keys[i] if keys is not None else 0, -lengths[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and (len(current) + 1) * longest > token_budget:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


@dataclass
class MicroBatch:
    """One forward and backward: right-padded rows, scored only at `positions`."""

    input_ids: torch.Tensor  # (B, L) right-padded
    attention_mask: torch.Tensor
    positions: torch.Tensor  # (P,) scored positions: where any row of the micro-batch has mask 1
    mask: torch.Tensor  # (B, P) float
    sampler_logps: torch.Tensor  # (B, P); NaN where the sampler gave none
    advantages: torch.Tensor  # (B,), or (B, P) when a row's turns carry their own (turn-level credit)
    weights: torch.Tensor  # (B, P): per-token share of its mini-batch's normalised loss
    trainer_old: torch.Tensor | None = None  # (B, P) trainer log-probs before the step's first update
    shared: int = 0  # leading tokens every row has: run once (trainer/shared_prefix.py)


def validate_trajectory(traj: Trajectory) -> None:
    """Clear errors for records the loss cannot use, instead of silent misalignment."""
    parts: list[tuple[str, Trajectory | TurnSample]] = [("", traj)]
    parts += [(f" windowed turn {i}", s) for i, s in enumerate(traj.windowed_turns)]
    for part, seq in parts:
        n, name = len(seq.token_ids), f"trajectory {traj.task_id!r}/{traj.group_id!r}{part}"
        if len(seq.loss_mask) != n:
            raise ValueError(f"{name}: loss_mask has {len(seq.loss_mask)} entries for {n} tokens")
        if seq.logprobs and len(seq.logprobs) != n:
            raise ValueError(
                f"{name}: logprobs has {len(seq.logprobs)} entries "
                f"for {n} tokens (expected one per token, 0.0 where loss_mask is 0, or none at all)"
            )


@dataclass
class Row:
    """One trained sequence: an episode's full sequence or one of its windowed turns."""

    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    advantage: float
    episode: int  # index of its episode in the step (for per-episode loss normalisation)
    group: int  # index of its GRPO group in the step: its rows start with the same prompt
    token_advantages: list[float] | None = None  # per token, when its turns carry their own advantages


def rows_of(adv: Advantages) -> list[Row]:
    rows = []
    groups: dict[str, int] = {}
    for e, (traj, a) in enumerate(zip(adv.trajectories, adv.advantages, strict=True)):
        group = groups.setdefault(traj.group_id, len(groups))
        if adv.turn_advantages:
            # A windowed turn is a row of its own: it carries its turn's advantage whole.
            per_token, windowed = token_advantages(traj, adv.turn_advantages[e])
            rows.append(Row(traj.token_ids, traj.loss_mask, traj.logprobs, a, e, group, per_token))
            rows += [
                Row(s.token_ids, s.loss_mask, s.logprobs, w, e, group)
                for s, w in zip(traj.windowed_turns, windowed, strict=True)
            ]
            continue
        sequences: list[Trajectory | TurnSample] = [traj, *traj.windowed_turns]
        rows += [Row(seq.token_ids, seq.loss_mask, seq.logprobs, a, e, group) for seq in sequences]
    return rows


def split_minibatches(adv: Advantages, parts: int) -> list[Advantages]:
    """The step's episodes in `parts` mini-batches of whole episodes, in order (the last may be smaller)."""
    n = len(adv.trajectories)
    size = max(1, math.ceil(n / parts))
    chunks = [Advantages(adv.trajectories[i : i + size], adv.advantages[i : i + size]) for i in range(0, n, size)]
    for chunk, i in zip(chunks, range(0, n, size), strict=True):
        chunk.turn_advantages = adv.turn_advantages[i : i + size]
    return chunks or [adv]


@dataclass(frozen=True)
class Batching:
    """How the updater lays out its micro-batches (from GRPOConfig and the updater's own set-up)."""

    token_budget: int  # rows x longest row per micro-batch
    pad_token_id: int
    loss_normalization: str  # "tokens": every trained token weighs the same; else each episode does
    share_prefix: bool  # group a GRPO group's rows together and run their common prompt once
    device: torch.device


def build_plans(adv: Advantages, parts: int, batching: Batching) -> list[list[MicroBatch]]:
    """The step's mini-batches (`parts` of them at most), each as its micro-batches; mini-batches
    without a trained token are left out."""
    plans = (build_microbatches(chunk, batching) for chunk in split_minibatches(adv, parts))
    return [plan for plan in plans if plan]


def build_microbatches(adv: Advantages, batching: Batching) -> list[MicroBatch]:
    """Pad, mask and weight the trained episodes; weights make micro-batch losses sum to the step's."""
    seqs = rows_of(adv)
    if not seqs:
        return []
    scored = [sum(1 for m in r.loss_mask[1:] if m) for r in seqs]
    total_tokens = sum(scored)
    episode_tokens: dict[int, int] = defaultdict(int)
    for r, n in zip(seqs, scored, strict=True):
        episode_tokens[r.episode] += n
    n_episodes = len(adv.trajectories)
    device = batching.device
    batches = []
    # Tokens after a sequence's last sampled token cannot change the loss (causal attention), so
    # each is cut there before packing: trailing environment text costs nothing.
    lengths = [_last_one(r.loss_mask) + 1 for r in seqs]
    groups = [r.group for r in seqs] if batching.share_prefix else None
    for indices in pack_microbatches(lengths, batching.token_budget, groups):
        rows = len(indices)
        length = max(lengths[i] for i in indices)
        ids = torch.full((rows, length), batching.pad_token_id, dtype=torch.long)
        attn = torch.zeros((rows, length), dtype=torch.long)
        mask = torch.zeros((rows, length), dtype=torch.float32)
        old = torch.full((rows, length), float("nan"), dtype=torch.float32)
        per_token = any(seqs[i].token_advantages is not None for i in indices)
        advantages = torch.zeros((rows, length) if per_token else (rows,), dtype=torch.float32)
        for row, i in enumerate(indices):
            seq, n = seqs[i], lengths[i]
            ids[row, :n] = torch.tensor(seq.token_ids[:n], dtype=torch.long)
            attn[row, :n] = 1
            mask[row, :n] = torch.tensor(seq.loss_mask[:n], dtype=torch.float32)
            if seq.logprobs:
                old[row, :n] = torch.tensor(seq.logprobs[:n], dtype=torch.float32)
            if seq.token_advantages is not None:
                advantages[row, :n] = torch.tensor(seq.token_advantages[:n], dtype=torch.float32)
            else:
                advantages[row] = seq.advantage
        mask[:, 0] = 0.0  # position 0 has no context and cannot be scored
        positions = torch.nonzero(mask.sum(dim=0) > 0).flatten()
        if positions.numel() == 0:
            continue  # nothing the model sampled in these episodes
        shared = shared_length(ids, attn, int(positions[0])) if batching.share_prefix else 0
        mask = mask[:, positions]
        if batching.loss_normalization == "tokens":
            weights = mask / max(total_tokens, 1)
        else:  # each episode's tokens (its windowed turns included) average to one episode's share
            per_episode = torch.tensor(
                [[max(episode_tokens[seqs[i].episode], 1)] for i in indices], dtype=torch.float32
            )
            weights = mask / per_episode / n_episodes
        batches.append(
            MicroBatch(
                input_ids=ids.to(device),
                attention_mask=attn.to(device),
                positions=positions.to(device),
                mask=mask.to(device),
                sampler_logps=old[:, positions].to(device),
                advantages=(advantages[:, positions] if per_token else advantages).to(device),
                weights=weights.to(device),
                shared=shared,
            )
        )
    return batches


def _last_one(values: Sequence[int]) -> int:
    """Index of the last non-zero entry, 0 when there is none."""
    for i in range(len(values) - 1, -1, -1):
        if values[i]:
            return i
    return 0

"""The GRPO objective's maths: group-relative advantages, the clipped per-token loss, truncated
importance weights and the policy's log-probs of chosen tokens.

Pure functions of tensors (the model enters only through `token_logprobs`' forward pass): no
optimizer, no batching, no files, so each formula is tested exactly (tests/test_grpo.py). The
updater (trainer/grpo.py) composes them; docs/grpo-and-trl.md compares them with TRL's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gymwire.trainer.shared_prefix import forward_with_shared_prefix
from gymwire.trainer.types import Trajectory

# ----------------------------------------------------------------------------------------------
# Advantages
# ----------------------------------------------------------------------------------------------


@dataclass
class Advantages:
    """The episodes that carry a learning signal, each with its advantage, and what was left out."""

    trajectories: list[Trajectory] = field(default_factory=list)
    advantages: list[float] = field(default_factory=list)
    groups: int = 0  # groups with at least one non-aborted episode
    skipped_groups: int = 0  # all rewards equal (incl. a lone episode): zero advantage, nothing to learn
    aborted: int = 0  # infrastructure failures, excluded before grouping
    nonfinite_groups: int = 0  # a reward was NaN or infinite: the group is left out, never trained on
    # Turn-level credit (trainer/turn_credit.py): per trajectory, one advantage per turn (its steps, in
    # order); empty: every sampled token of an episode carries the episode's advantage.
    turn_advantages: list[list[float]] = field(default_factory=list)
    step_only_groups: int = 0  # equal episode rewards, kept for the turns' step-level signal alone
    anchor_groups: int = 0  # groups of >= 2 turns taken from one state (the step-level baselines)


def group_advantages(
    trajectories: Sequence[Trajectory], *, scale_rewards: bool = True, eps: float = 1e-4
) -> Advantages:
    """Group-relative advantages: (reward - group mean) / (group std + eps), std unbiased as in TRL/verl.

    Aborted episodes are removed first: an infrastructure failure is not a score, and keeping it as
    0 would bias its group's baseline. Groups whose rewards are all equal would train on zero
    advantages (pure KL pull and wasted compute), so they are skipped and counted.
    """
    result = Advantages()
    for members in scored_groups(trajectories, result):
        rewards = torch.tensor([float(t.reward) for t in members], dtype=torch.float64)
        if not bool(torch.isfinite(rewards).all()):
            result.nonfinite_groups += 1  # one NaN would make the whole group's advantages NaN
            continue
        if len(members) < 2 or bool(torch.allclose(rewards, rewards[0].expand_as(rewards))):
            result.skipped_groups += 1
            continue
        centred = rewards - rewards.mean()
        if scale_rewards:
            centred = centred / (rewards.std(unbiased=True) + eps)
        result.trajectories.extend(members)
        result.advantages.extend(centred.tolist())
    return result


def scored_groups(trajectories: Sequence[Trajectory], result: Advantages) -> list[list[Trajectory]]:
    """The GRPO groups' non-aborted members, in order of first appearance; counts the aborted episodes
    and the groups in `result`."""
    by_group: dict[str, list[Trajectory]] = defaultdict(list)
    for traj in trajectories:
        if traj.aborted:
            result.aborted += 1
        else:
            by_group[traj.group_id].append(traj)
    result.groups += len(by_group)
    return list(by_group.values())


# ----------------------------------------------------------------------------------------------
# The per-token objective
# ----------------------------------------------------------------------------------------------


def clipped_policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    dual_clip: float | None = None,
    is_weights: torch.Tensor | None = None,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token PPO-clip loss plus beta * k3 KL, zero wherever mask == 0.

    Shapes: (B, T) for log-probs, mask and `is_weights`; advantages (B,) or (B, 1) per sequence, or
    (B, T) per token (turn-level credit: each turn's tokens carry their turn's advantage). Returns
    (per_token_loss, per_token_kl, ratio, clipped), all (B, T). Mask-0 positions are selected away
    (`where`, not multiplied: inf * 0 is NaN) before exp, so whatever sits there (the 0.0
    placeholders of Trajectory.logprobs, garbage) can neither overflow nor leak a gradient.

    `dual_clip` (c > 1) bounds the loss of a negative-advantage token at -c * A however large its
    ratio (verl's clip_ratio_c): a token the policy has moved far up cannot dominate the step.
    `is_weights` (detached) scale the policy-gradient term per token: the truncated importance
    weight that corrects for the sampler's own probabilities differing from the trainer's.
    """
    on = mask > 0
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    zero = torch.zeros_like(logps)
    log_ratio = torch.where(on, logps - old_logps, zero).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)
    clipped_ratio = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high)
    unclipped_obj = ratio * advantages
    clipped_obj = clipped_ratio * advantages
    per_token = -torch.min(unclipped_obj, clipped_obj)
    clipped = (clipped_obj < unclipped_obj) & on
    if dual_clip is not None:
        bound = -dual_clip * advantages.expand_as(per_token)
        negative = advantages.expand_as(per_token) < 0
        clipped = clipped | (negative & (per_token > bound) & on)
        per_token = torch.where(negative, torch.minimum(per_token, bound), per_token)
    if is_weights is not None:
        per_token = per_token * is_weights.detach()
    if ref_logps is not None and beta != 0.0:
        delta = torch.where(on, ref_logps - logps, zero).clamp(-20.0, 20.0)
        kl = torch.exp(delta) - delta - 1.0
        per_token = per_token + beta * kl
    else:
        kl = zero
    return torch.where(on, per_token, zero), torch.where(on, kl, zero), ratio, clipped


def importance_weights(
    trainer_logps: torch.Tensor, sampler_logps: torch.Tensor, mask: torch.Tensor, *, cap: float, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token p_trainer / p_sampler with its cap; (weights, capped) both (B, T), weight 1 off-mask.

    `token_truncate` clips the weight at `cap` (TRL's and verl's truncated IS); `token_mask` drops
    tokens above it (weight 0). Tokens without a sampler log-prob (NaN) keep weight 1.
    """
    known = (mask > 0) & ~torch.isnan(sampler_logps)
    log_w = torch.where(known, trainer_logps - torch.nan_to_num(sampler_logps), torch.zeros_like(trainer_logps))
    weights = torch.exp(log_w.clamp(max=20.0))
    capped = known & (weights > cap)
    if mode == "token_mask":
        weights = torch.where(capped, torch.zeros_like(weights), weights)
    else:
        weights = weights.clamp(max=cap)
    return weights, capped


def token_logprobs(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    positions: torch.Tensor | int,
    temperature: float = 1.0,
    shared: int = 0,
) -> torch.Tensor:
    """log p(token_t | tokens_<t) at the given positions t (1-D, sorted), shape (B, len(positions)).

    `shared`: the first `shared` tokens are the same in every row and run once
    (trainer/shared_prefix.py); the same values, less work.

    An int means every position from there to the end. Only the logits that predict these tokens
    are materialised (`logits_to_keep` with indices, done by the model's own head, so soft-capping
    or logit scaling of other architectures stays right): prompt and environment text cost a
    forward pass through the body but no vocabulary projection or log-softmax.
    """
    if isinstance(positions, int):
        positions = torch.arange(positions, input_ids.shape[1], device=input_ids.device)
    if positions.numel() == 0 or int(positions.min()) < 1:
        raise ValueError("positions must be non-empty and >= 1 (the first token has no context)")
    if shared > 0:
        logits = forward_with_shared_prefix(model, input_ids, attention_mask, shared, positions - 1)
    else:
        logits = model(
            input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=positions - 1, use_cache=False
        ).logits
    return selected_logprobs(logits, input_ids[:, positions], temperature)


# Rows of logits upcast to fp32 at once: 2^24 elements is 64 MiB of fp32 (110 rows of a 152k vocabulary,
# 341 of a 49k one). Each chunk has a copy and an exp() of its size alive, so this bounds the update's
# transient peak beyond the logits; the loop over chunks costs nothing measurable.
LOGSOFTMAX_CHUNK_ELEMENTS = 1 << 24


def selected_logprobs(logits: torch.Tensor, index: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log_softmax(logits / temperature) gathered at `index`: (..., V) and (...) -> (...) in fp32.

    The maths is fp32 (bf16's log-softmax is off by ~1e-2) but never on the whole tensor: upcasting
    every (token, vocabulary) logit at once costs 4 bytes per entry, ~10 GB at 16k tokens and Qwen's
    152k vocabulary, and its backward several times that. Here a chunk of rows is upcast at a time,
    the backward recomputes each chunk's softmax from the logits as they are (bf16) and writes the
    gradient in their dtype: beyond the logits themselves, one gradient of their size and one chunk.
    """
    flat = logits.reshape(-1, logits.shape[-1])
    rows = max(1, LOGSOFTMAX_CHUNK_ELEMENTS // flat.shape[-1])
    picked = _SelectedLogSoftmax.apply(flat, index.reshape(-1), float(temperature), rows)
    return picked.view(index.shape)


class _SelectedLogSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, index: torch.Tensor, temperature: float, rows: int) -> torch.Tensor:
        picked = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
        lse = torch.empty_like(picked)
        for start in range(0, logits.shape[0], rows):
            chunk = logits[start : start + rows].float() / temperature
            lse[start : start + rows] = torch.logsumexp(chunk, dim=-1)
            picked[start : start + rows] = chunk.gather(-1, index[start : start + rows, None]).squeeze(-1)
        ctx.save_for_backward(logits, index, lse)
        ctx.temperature, ctx.rows = temperature, rows
        return picked - lse

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        logits, index, lse = ctx.saved_tensors
        temperature, rows = ctx.temperature, ctx.rows
        grad = torch.empty_like(logits)
        for start in range(0, logits.shape[0], rows):
            end = start + rows
            g = grad_out[start:end, None].float()
            # d/dx_j (x_i / T - logsumexp(x / T)) = (onehot_i - softmax_j) / T
            chunk = torch.exp(logits[start:end].float() / temperature - lse[start:end, None]).mul_(-g)
            chunk.scatter_add_(-1, index[start:end, None], g)
            grad[start:end] = chunk.div_(temperature)
        return grad, None, None, None

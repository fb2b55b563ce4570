"""Proof that new weights reached the inference engine: its log-probs against the trainer's.

After an update is streamed into vLLM (in this process or a server), one episode of the step is
scored by both: the engine's log p(token | prefix) and the trainer's, at temperature 1.
Equal weights give gaps at the level of kernel and precision noise (~1e-3 in fp32, ~1e-2 in
bf16); weights that did not arrive give the size of the update or more. The gap is measured on
the tokens the model sampled (loss mask 1), the distribution the trainer corrects against.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gymwire.trainer.types import Trajectory

if TYPE_CHECKING:
    from gymwire.trainer.policy import Policy
    from gymwire.trainer.updater import Updater


class WeightSyncError(RuntimeError):
    """The engine's log-probs do not match the trainer's after a sync: the weights did not arrive."""


def probe_episode(episodes: Sequence[Trajectory]) -> Trajectory | None:
    """The shortest non-aborted episode with sampled tokens: the cheapest faithful probe."""
    usable = [t for t in episodes if not t.aborted and any(t.loss_mask[1:])]
    return min(usable, key=lambda t: len(t.token_ids)) if usable else None


def logprob_gaps(engine: Sequence[float], trainer: Sequence[float], loss_mask: Sequence[int]) -> list[float]:
    """|engine - trainer| at the sampled positions (position 0 has no context and is skipped)."""
    if not len(engine) == len(trainer) == len(loss_mask):
        raise ValueError(f"length mismatch: engine {len(engine)}, trainer {len(trainer)}, mask {len(loss_mask)}")
    return [abs(e - t) for e, t, m in zip(engine[1:], trainer[1:], loss_mask[1:], strict=True) if m]


def check_sync(
    policy: Policy, updater: Updater, episodes: Sequence[Trajectory], *, tolerance: float
) -> dict[str, float]:
    """Score one episode with the engine and the trainer; raise WeightSyncError when the mean gap is
    above `tolerance`. Returns gap_mean, gap_max and the tokens compared (0 when nothing to probe)."""
    episode = probe_episode(episodes)
    if episode is None:
        return {"gap_mean": 0.0, "gap_max": 0.0, "gap_tokens": 0.0}
    # At temperature 1: vLLM scores a prompt from the raw logits whatever the sampling settings.
    gaps = logprob_gaps(
        policy.score(episode.token_ids, 1.0), updater.sequence_logprobs(episode.token_ids, 1.0), episode.loss_mask
    )
    mean = sum(gaps) / len(gaps)
    if mean > tolerance:
        raise WeightSyncError(
            f"after the weight sync the engine's log-probs differ from the trainer's by {mean:.4f} nats per "
            f"token on average (max {max(gaps):.4f}, {len(gaps)} tokens; tolerance {tolerance}): the engine "
            "is not sampling from the weights being trained"
        )
    return {"gap_mean": mean, "gap_max": max(gaps), "gap_tokens": float(len(gaps))}

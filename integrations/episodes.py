"""What every trainer integration shares: tasks named in a dataset row, and finished episodes split
into the (prompt, response, mask of sampled tokens) shape that external trainers train on.

A gymwire episode is token-exact (`Trajectory.token_ids`, `loss_mask` 1 exactly on tokens the model
sampled). External trainers want the first turn's context as the prompt and everything after it as
one response whose mask marks the sampled tokens; the environment's replies and the template's
framing sit inside the response with mask 0, so they are never trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gymwire.trainer.rollout import EnvConfig, TaskRef
from gymwire.trainer.types import Trajectory

TASK_PREFIX = "gymwire:"


def task_key(ref: TaskRef) -> str:
    """The dataset row's text naming one task: `gymwire:<environment>/<task id>`."""
    if "/" in ref.env:
        raise ValueError(f"environment name {ref.env!r} contains '/'")
    return f"{TASK_PREFIX}{ref.env}/{ref.task_id}"


def parse_task_key(text: str) -> TaskRef:
    """The task a `task_key` names; a clear error for any other text."""
    if not isinstance(text, str) or not text.startswith(TASK_PREFIX) or "/" not in text:
        shown = text if len(str(text)) <= 80 else f"{str(text)[:80]}..."
        raise ValueError(f"not a gymwire task key (expected '{TASK_PREFIX}<environment>/<task id>'): {shown!r}")
    env, task_id = text[len(TASK_PREFIX) :].split("/", 1)
    if not env or not task_id:
        raise ValueError(f"task key {text!r} lacks an environment or a task id")
    return TaskRef(env, task_id)


def check_single_sequence(settings: EnvConfig) -> None:
    """External trainers train one sequence per episode: a history window (turns generated from a
    context that is not a prefix of that sequence) cannot be expressed."""
    if settings.history_turns is not None:
        raise ValueError("history_turns is not supported here: an external trainer trains one sequence per episode")


def server_addresses(servers: Any) -> list[str]:
    """`servers` as the YAML gives it: a list of addresses, or environment -> address(es)."""
    if isinstance(servers, str):
        return [servers]
    if isinstance(servers, Mapping):
        found: list[str] = []
        for value in servers.values():
            found.extend([value] if isinstance(value, str) else list(value))
        return found
    return [str(a) for a in servers]


def episode_settings(spec: Mapping[str, Any]) -> EnvConfig:
    """A row's `extra_info.gymwire` turn limit and action-list switch."""
    return EnvConfig(
        max_turns=int(spec.get("max_turns", 0) or 0), show_valid_actions=bool(spec.get("show_valid_actions", False))
    )


@dataclass(frozen=True)
class EpisodeTokens:
    """One finished episode as an external trainer takes it."""

    prompt_ids: list[int]  # the conversation up to the model's first turn
    response_ids: list[int]  # every later token: sampled turns, the env's replies, template framing
    response_mask: list[int]  # 1 on tokens the model sampled, 0 on everything else
    response_logprobs: list[float]  # the sampler's log-prob on sampled tokens, 0.0 elsewhere
    reward: float | None  # the episode's return; None when infrastructure aborted it (never a score)
    turns: int
    trajectory: Trajectory

    @property
    def aborted(self) -> bool:
        return self.reward is None


def episode_tokens(trajectory: Trajectory, filler_id: int) -> EpisodeTokens:
    """Split a trajectory at its first sampled token. An aborted episode, or one that never got a
    turn, still yields one response token (`filler_id`, mask 0): trainers index the last token."""
    start = trajectory.prompt_length
    prompt = list(trajectory.token_ids[:start]) or [filler_id]
    response = list(trajectory.token_ids[start:])
    mask = list(trajectory.loss_mask[start:])
    logprobs = list(trajectory.logprobs[start:])
    if trajectory.aborted:  # whatever was sampled before the fault is never trained on
        mask = [0] * len(mask)
    if not response:
        response, mask, logprobs = [filler_id], [0], [0.0]
    reward = None if trajectory.aborted else trajectory.reward
    return EpisodeTokens(prompt, response, mask, logprobs, reward, trajectory.turns, trajectory)

"""The records that flow through the trainer: sampling requests, generations and trajectories.

A trajectory is token-exact: `token_ids` is the whole conversation as the model saw it, the
tokens the model sampled are kept as sampled (never re-tokenised), and `loss_mask` is 1 exactly on
those sampled tokens. Everything downstream (GRPO, SFT, evaluation, JSONL) reads this one record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 200
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class Generation:
    """One sampled completion of a prompt."""

    token_ids: list[int]  # sampled tokens, ending with the end-of-turn token when finish_reason == "stop"
    logprobs: list[float]  # the sampler's log-probability of each sampled token
    text: str  # decoded token_ids without special tokens
    finish_reason: Literal["stop", "length"]


@dataclass
class TurnSample:
    """One generation as the sampler saw it: its context (mask 0) then its sampled tokens (mask 1)."""

    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    prompt_length: int


@dataclass
class StepRecord:
    """One turn as the environment answered it: what the server parsed and returned, and what the turn cost."""

    turn: int  # 0-based index of the agent's turn in the episode
    parsed_action: str  # the action the server extracted from the turn's text ("" when none)
    action_valid: bool
    reward: float  # this step's reward alone
    terminated: bool
    truncated: bool
    info: dict[str, Any] = field(default_factory=dict)  # the observation's structured info, as plain JSON
    generated_tokens: int = 0  # the turn's tokens in the sequence (a text turn's too; 0 when kept as text only)
    generate_s: float = 0.0  # seconds spent producing the turn (model generation, or the expert's reply)
    step_s: float = 0.0  # seconds of the environment's Step call
    # The state the turn acted from (the observation before it): the server's state_key, or "text:" and a
    # hash of that observation's text when the server sends none; "" in records written before it existed.
    anchor: str = ""


@dataclass
class Trajectory:
    """One episode of one task, ready for training and analysis."""

    env: str  # environment name (GetInfo.name)
    task_id: str
    group_id: str  # episodes of one GRPO group share it
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)  # 1 = sampled by the model, 0 = prompt/env/template
    logprobs: list[float] = field(default_factory=list)  # sampler logprob where loss_mask == 1, else 0.0
    prompt_length: int = 0  # tokens before the model's first turn
    messages: list[dict[str, str]] = field(default_factory=list)  # the chat as text, for JSONL and SFT
    reward: float = 0.0  # episode return (sum of step rewards)
    success: bool = False
    turns: int = 0
    generated_tokens: int = 0
    terminated: bool = False
    truncated: bool = False  # turn limit or context-length limit
    invalid_actions: int = 0
    aborted: bool = False  # infrastructure failure: never scored, never trained on
    abort_reason: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    # With a history window: the turns generated from a windowed context (not a prefix of token_ids,
    # so masked out there), each as its own exact sequence; GRPO trains them with the episode's advantage.
    windowed_turns: list[TurnSample] = field(default_factory=list)
    # One record per turn the environment answered (empty in records written before they existed).
    steps: list[StepRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.windowed_turns = [s if isinstance(s, TurnSample) else TurnSample(**s) for s in self.windowed_turns]
        self.steps = [s if isinstance(s, StepRecord) else StepRecord(**s) for s in self.steps]

    def add_step(self, step: StepRecord) -> None:
        """Record one answered turn; the episode's return and invalid-action count follow from the records."""
        self.steps.append(step)
        self.reward += step.reward
        self.invalid_actions += not step.action_valid

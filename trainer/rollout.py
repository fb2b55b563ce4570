"""The rollout engine: one coroutine per episode against gymwire servers, no lock-step rounds.

Every episode runs on its own: generate (the policy batches concurrent requests), send the raw
turn to the server, append the reply, repeat. A GRPO group is G episodes of one task id. Episodes
that infrastructure aborts (server died, session lost, deadline) are retried on a healthy replica
or dropped and counted; they never enter training as reward 0.

One episode loop (`play_episode`) serves every agent: a `TurnSource` gives each turn (the policy
sampling tokens, or a reference agent writing text), so rollouts, evaluations and expert
demonstrations open and continue the conversation identically, token for token.

Its config objects, `RolloutConfig` and `EnvConfig`, live in trainer/settings.py with the run
config's other sections (a config loads without gRPC) and import from here too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from google.protobuf.json_format import MessageToDict

from gymwire.client import AsyncEpisode, EnvPool, EpisodeAborted
from gymwire.trainer.policy.base import ContextFull, Policy
from gymwire.trainer.renamed import renamed
from gymwire.trainer.sequence import ConversationBuilder, Message, encode, opening_messages
from gymwire.trainer.settings import EnvConfig, RolloutConfig, Transport
from gymwire.trainer.types import Generation, SamplingParams, StepRecord, Trajectory
from gymwire.v1 import environment_pb2 as pb

if not TYPE_CHECKING:
    __getattr__ = renamed(__name__, {"EnvSettings": "EnvConfig"}, globals())

log = logging.getLogger("gymwire.trainer")


@dataclass(frozen=True)
class TaskRef:
    env: str
    task_id: str


def task_info(task: pb.Task) -> dict[str, str]:
    """The task's catalogue facts, kept with each trajectory for per-tier and per-category tables."""
    return {"split": task.split, "difficulty": task.difficulty, "category": task.category}


@dataclass
class RolloutStats:
    episodes: int = 0
    aborted_retried: int = 0
    aborted_dropped: int = 0
    abort_reasons: dict[str, int] = field(default_factory=dict)

    def count_abort(self, reason: str) -> None:
        key = reason.split(":")[0]
        self.abort_reasons[key] = self.abort_reasons.get(key, 0) + 1


def observation_text(obs: pb.Observation) -> str:
    """What the agent reads: the env's text, plus the legal actions when the stage shows them."""
    if not obs.valid_actions_included:
        return obs.text
    return f"{obs.text}\nAvailable actions: {json.dumps(list(obs.valid_actions))}"


TEXT_ANCHOR_PREFIX = "text:"


def state_anchor(obs: pb.Observation) -> str:
    """The state an observation shows, for grouping turns taken from it (trainer/turn_credit.py): the
    server's state_key, or, when it sends none, "text:" and a hash of the text (GiGPO's own anchor is
    the observation text: equal texts may still hide different states, which the key does not)."""
    if obs.state_key:
        return obs.state_key
    return TEXT_ANCHOR_PREFIX + hashlib.sha1(obs.text.encode()).hexdigest()[:16]


def step_record(
    turn: int,
    obs: pb.Observation,
    *,
    generated_tokens: int = 0,
    generate_s: float = 0.0,
    step_s: float = 0.0,
    anchor: str = "",
) -> StepRecord:
    """What the server said about one turn, with the info Struct as plain JSON types for the JSONL.
    `anchor`: the state the turn acted from (`state_anchor` of the observation before it)."""
    return StepRecord(
        turn=turn,
        parsed_action=obs.parsed_action,
        action_valid=obs.action_valid,
        reward=obs.reward,
        terminated=obs.terminated,
        truncated=obs.truncated,
        info=MessageToDict(obs.info),
        generated_tokens=generated_tokens,
        generate_s=generate_s,
        step_s=step_s,
        anchor=anchor,
    )


@dataclass(frozen=True)
class NoTurn:
    """A turn source's answer when it has no turn to give: the episode ends here."""

    reason: str
    truncated: bool = True  # the context is full (the episode is cut short), not that the agent gave up


class TextConversation:
    """An episode kept as text only, for turn sources without a tokenizer (reference agents in
    evaluation): the same calls as ConversationBuilder, no token sequence."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = [dict(m) for m in messages]
        self.turns = 0
        self.generated_tokens = 0
        self.done = False
        self.truncation_reason = ""

    def add_generation(self, generation: Generation) -> None:
        self.messages.append({"role": "assistant", "content": generation.text})
        self.turns += 1

    def add_observation(self, text: str) -> bool:
        self.messages.append({"role": "user", "content": text})
        return True

    def finish(self, *, truncated: bool = False, reason: str = "") -> None:
        self.done = True
        if truncated and not self.truncation_reason:
            self.truncation_reason = reason or "truncated by the caller"

    def fill(self, trajectory: Trajectory) -> Trajectory:
        trajectory.messages = [dict(m) for m in self.messages]
        trajectory.turns = self.turns
        if self.truncation_reason:
            trajectory.truncated = True
            trajectory.info.setdefault("truncation_reason", self.truncation_reason)
        return trajectory


Conversation = ConversationBuilder | TextConversation


class TurnSource(ABC):
    """Where an episode's turns come from: a policy sampling tokens, or an agent writing text.
    `play_episode` is the one loop around every source, so they all see the same conversation."""

    # Set: the episode is built token by token (ConversationBuilder); None: kept as text only.
    tokenizer: Any = None

    @abstractmethod
    async def next_turn(self, episode: AsyncEpisode, conversation: Conversation) -> Generation | NoTurn:
        """The agent's next turn, given the live episode and the conversation so far."""


def text_turn(conversation: Conversation, text: str) -> Generation:
    """A turn written as text, framed as a model turn that stopped by itself: its tokens end with
    the template's end-of-turn token, so the sequence is the one a model emitting that text builds."""
    if isinstance(conversation, TextConversation):
        return Generation([], [], text, "stop")
    ids = encode(conversation.tokenizer, text) + (conversation.stop_token_ids or [])[-1:]
    return Generation(ids, [0.0] * len(ids), text, "stop")


async def play_episode(
    pool: EnvPool,
    ref: TaskRef,
    source: TurnSource,
    settings: EnvConfig = EnvConfig(),
    *,
    group_id: str,
    system: str | None = None,
    max_total_tokens: int | None = None,
    transport: Transport = "multiplex",
) -> Trajectory:
    """The episode loop of rollouts, evaluation and demonstrations: open the conversation, then
    turn, step, observation until the episode ends, the context is full or the source stops.
    `transport`: how the episode reaches its server (RolloutConfig.transport)."""
    trajectory = Trajectory(env=ref.env, task_id=ref.task_id, group_id=group_id)
    episode = None
    try:
        info = await pool.info(ref.env)
        episode = await pool.reset(
            ref.env,
            ref.task_id,
            include_valid_actions=settings.show_valid_actions,
            max_turns=settings.max_turns,
            transport=transport,
        )
        trajectory.info.update(task_info(episode.task))
        opening = opening_messages(observation_text(episode.observation), instruction=info.instruction, system=system)
        conversation: Conversation = (
            TextConversation(opening)
            if source.tokenizer is None
            else ConversationBuilder(
                source.tokenizer, opening, max_total_tokens=max_total_tokens, history_turns=settings.history_turns
            )
        )
        anchor = state_anchor(episode.observation)  # the state the next turn acts from
        while not conversation.done:
            started = time.perf_counter()
            turn = await source.next_turn(episode, conversation)
            if isinstance(turn, NoTurn):
                if not turn.truncated:
                    trajectory.info["no_turn"] = turn.reason
                conversation.finish(truncated=turn.truncated, reason=turn.reason)
                break
            produced = time.perf_counter()
            before = conversation.generated_tokens
            conversation.add_generation(turn)
            obs = await episode.step(turn.text)
            trajectory.add_step(
                step_record(
                    conversation.turns - 1,
                    obs,
                    generated_tokens=conversation.generated_tokens - before,
                    generate_s=produced - started,
                    step_s=time.perf_counter() - produced,
                    anchor=anchor,
                )
            )
            anchor = state_anchor(obs)
            if obs.terminated or obs.truncated:
                trajectory.terminated, trajectory.truncated = obs.terminated, obs.truncated
                trajectory.success = obs.success
                conversation.finish()
                break
            if not conversation.add_observation(observation_text(obs)):
                break  # the context is full: the episode is cut short (truncated)
        conversation.fill(trajectory)
    except EpisodeAborted as exc:
        trajectory.aborted = True
        trajectory.abort_reason = f"{exc.code.name}: {exc.message}"
    finally:
        if episode is not None:
            await episode.close()  # never raises; on a stream it also ends the stream
    return trajectory


class PolicyTurns(TurnSource):
    """Turns sampled by a policy, within what the conversation and the policy's context leave."""

    def __init__(self, policy: Policy, sampling: SamplingParams) -> None:
        self.policy = policy
        self.tokenizer = policy.tokenizer
        self.sampling = sampling

    async def next_turn(self, episode: AsyncEpisode, conversation: Conversation) -> Generation | NoTurn:
        assert isinstance(conversation, ConversationBuilder)
        budget = conversation.max_new_tokens(self.sampling.max_new_tokens)
        if budget <= 0:
            return NoTurn("no room left under max_total_tokens")
        prompt = conversation.prompt_ids
        limit = self.policy.max_model_len
        room = sys.maxsize if limit is None else limit - len(prompt)
        if room <= 0:
            return NoTurn(f"prompt of {len(prompt)} tokens fills the policy's context of {limit}")
        try:
            return await self.policy.generate(prompt, replace(self.sampling, max_new_tokens=min(budget, room)))
        except ContextFull as exc:  # the engine's own limit, when it knows better than max_model_len
            return NoTurn(str(exc))


class RolloutEngine:
    def __init__(
        self,
        pool: EnvPool,
        policy: Policy,
        config: RolloutConfig = RolloutConfig(),
        env_settings: dict[str, EnvConfig] | None = None,
    ):
        self.pool = pool
        self.policy = policy
        self.config = config
        self.env_settings = env_settings or {}
        self.stats = RolloutStats()

    def settings(self, env: str) -> EnvConfig:
        return self.env_settings.get(env, EnvConfig())

    async def episode(self, ref: TaskRef, group_id: str, seed: int | None = None) -> Trajectory:
        """One episode; retried on abort. Returns an aborted trajectory only when retries run out."""
        for attempt in range(self.config.abort_retries + 1):
            trajectory = await self._play(ref, group_id, seed)
            if not trajectory.aborted:
                self.stats.episodes += 1
                return trajectory
            self.stats.count_abort(trajectory.abort_reason)
            if attempt < self.config.abort_retries:
                self.stats.aborted_retried += 1
                log.warning("episode of %s/%s aborted (%s); retrying", ref.env, ref.task_id, trajectory.abort_reason)
        self.stats.aborted_dropped += 1
        return trajectory

    def turns(self, sampling: SamplingParams) -> PolicyTurns:
        """The agent of one episode: the policy sampling with `sampling` (a trainer may wrap it)."""
        return PolicyTurns(self.policy, sampling)

    async def _play(self, ref: TaskRef, group_id: str, seed: int | None) -> Trajectory:
        # Unless the run turned it off; getattr: an engine driven by scripted turns has no policy.
        admission = getattr(self.policy, "admission", None) if self.config.kv_admission else None
        if admission is None:
            return await self._play_now(ref, group_id, seed)
        budget = min(self.config.max_total_tokens, self.policy.max_model_len or self.config.max_total_tokens)
        async with admission.slot(budget) as slot:
            trajectory = await self._play_now(ref, group_id, seed)
            slot.tokens = len(trajectory.token_ids)
        return trajectory

    async def _play_now(self, ref: TaskRef, group_id: str, seed: int | None) -> Trajectory:
        sampling = self.config.sampling if seed is None else replace(self.config.sampling, seed=seed)
        return await play_episode(
            self.pool,
            ref,
            self.turns(sampling),
            self.settings(ref.env),
            group_id=group_id,
            system=self.config.system_prompt,
            max_total_tokens=self.config.max_total_tokens,
            transport=self.config.transport,
        )

    async def group(self, ref: TaskRef, size: int, base_seed: int | None = None) -> list[Trajectory]:
        """G episodes of one task (a GRPO group), all at once."""
        # Seeded groups get their seed as id, so a resumed run writes the very records of an unkilled one.
        suffix = uuid.uuid4().hex[:8] if base_seed is None else f"s{base_seed}"
        group_id = f"{ref.env}/{ref.task_id}/{suffix}"
        seeds = [None if base_seed is None else base_seed + i for i in range(size)]
        return list(await asyncio.gather(*(self.episode(ref, group_id, s) for s in seeds)))

    async def groups(self, refs: Sequence[TaskRef], size: int, base_seed: int | None = None) -> list[list[Trajectory]]:
        """Many groups concurrently: every episode of every group is its own coroutine."""
        seeds = [None if base_seed is None else base_seed + 1000 * i for i in range(len(refs))]
        return list(await asyncio.gather(*(self.group(ref, size, s) for ref, s in zip(refs, seeds, strict=True))))

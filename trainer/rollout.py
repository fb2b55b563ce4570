"""The rollout engine: one coroutine per episode against gymwire servers, no lock-step rounds.

Every episode runs on its own: generate (the policy batches concurrent requests), send the raw
turn to the server, append the reply, repeat. A GRPO group is G episodes of one task id. Episodes
that infrastructure aborts (server died, session lost, deadline) are retried on a healthy replica
or dropped and counted; they never enter training as reward 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from google.protobuf.json_format import MessageToDict

from gymwire.client import EnvPool, EpisodeAborted
from gymwire.trainer.policy.base import ContextFull, Policy
from gymwire.trainer.sequence import ConversationBuilder
from gymwire.trainer.types import SamplingParams, StepRecord, Trajectory
from gymwire.v1 import environment_pb2 as pb

log = logging.getLogger("gymwire.trainer")


@dataclass(frozen=True)
class EnvSettings:
    """Per-environment switches a stage controls (the paper's action-list ablation among them)."""

    max_turns: int = 0  # 0: the environment's default
    show_valid_actions: bool = False  # put the legal actions into every observation the agent reads
    history_turns: int | None = None  # keep only the last K exchanges in the prompt (None: all)


@dataclass(frozen=True)
class RolloutConfig:
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_total_tokens: int = 4096
    abort_retries: int = 2  # an aborted episode is started again this many times before it is dropped
    system_prompt: str | None = None  # prepended to the env's own instruction when set
    stream: bool = True  # one Session stream per episode: cheaper than unary calls, frees the session at once


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


def step_record(turn: int, obs: pb.Observation, *, generated_tokens: int = 0, generate_s: float = 0.0,
                step_s: float = 0.0) -> StepRecord:
    """What the server said about one turn, with the info Struct as plain JSON types for the JSONL."""
    return StepRecord(turn=turn, parsed_action=obs.parsed_action, action_valid=obs.action_valid, reward=obs.reward,
                      terminated=obs.terminated, truncated=obs.truncated, info=MessageToDict(obs.info),
                      generated_tokens=generated_tokens, generate_s=generate_s, step_s=step_s)


class RolloutEngine:
    def __init__(self, pool: EnvPool, policy: Policy, config: RolloutConfig = RolloutConfig(),
                 env_settings: dict[str, EnvSettings] | None = None):
        self.pool = pool
        self.policy = policy
        self.config = config
        self.env_settings = env_settings or {}
        self.stats = RolloutStats()

    def settings(self, env: str) -> EnvSettings:
        return self.env_settings.get(env, EnvSettings())

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

    async def _play(self, ref: TaskRef, group_id: str, seed: int | None) -> Trajectory:
        settings = self.settings(ref.env)
        trajectory = Trajectory(env=ref.env, task_id=ref.task_id, group_id=group_id)
        episode = None
        try:
            info = await self.pool.info(ref.env)
            episode = await self.pool.reset(ref.env, ref.task_id, include_valid_actions=settings.show_valid_actions,
                                            max_turns=settings.max_turns, stream=self.config.stream)
            trajectory.info.update(task_info(episode.task))
            builder = ConversationBuilder.start(
                self.policy.tokenizer, observation_text(episode.observation), instruction=info.instruction,
                system=self.config.system_prompt, max_total_tokens=self.config.max_total_tokens,
                history_turns=settings.history_turns)
            sampling = self.config.sampling if seed is None else replace(self.config.sampling, seed=seed)
            while not builder.done:
                budget = builder.max_new_tokens(sampling.max_new_tokens)
                if budget <= 0:
                    builder.finish(truncated=True, reason="no room left under max_total_tokens")
                    break
                prompt = builder.prompt_ids
                room = self._context_room(prompt)
                if room <= 0:
                    builder.finish(truncated=True, reason=f"prompt of {len(prompt)} tokens fills the policy's "
                                                          f"context of {self.policy.max_model_len}")
                    break
                started = time.perf_counter()
                try:
                    generation = await self.policy.generate(prompt, replace(sampling, max_new_tokens=min(budget, room)))
                except ContextFull as exc:  # the engine's own limit, when it knows better than max_model_len
                    builder.finish(truncated=True, reason=str(exc))
                    break
                generated = time.perf_counter()
                kept = builder.generated_tokens
                builder.add_generation(generation)
                obs = await episode.step(generation.text)
                trajectory.add_step(step_record(builder.turns - 1, obs,
                                                generated_tokens=builder.generated_tokens - kept,
                                                generate_s=generated - started, step_s=time.perf_counter() - generated))
                if obs.terminated or obs.truncated:
                    trajectory.terminated, trajectory.truncated = obs.terminated, obs.truncated
                    trajectory.success = obs.success
                    builder.finish()
                    break
                if not builder.add_observation(observation_text(obs)):
                    break  # the context is full: the episode is cut short (truncated)
            builder.fill(trajectory)
        except EpisodeAborted as exc:
            trajectory.aborted = True
            trajectory.abort_reason = f"{exc.code.name}: {exc.message}"
        finally:
            if episode is not None:
                await episode.close()  # never raises; on a stream it also ends the stream
        return trajectory

    def _context_room(self, prompt: list[int]) -> int:
        """Tokens the policy's context leaves for a completion of `prompt` (no limit: maxsize)."""
        limit = self.policy.max_model_len
        return sys.maxsize if limit is None else limit - len(prompt)

    async def group(self, ref: TaskRef, size: int, base_seed: int | None = None) -> list[Trajectory]:
        """G episodes of one task (a GRPO group), all at once."""
        group_id = f"{ref.env}/{ref.task_id}/{uuid.uuid4().hex[:8]}"
        seeds = [None if base_seed is None else base_seed + i for i in range(size)]
        return list(await asyncio.gather(*(self.episode(ref, group_id, s) for s in seeds)))

    async def groups(self, refs: Sequence[TaskRef], size: int, base_seed: int | None = None) -> list[list[Trajectory]]:
        """Many groups concurrently: every episode of every group is its own coroutine."""
        seeds = [None if base_seed is None else base_seed + 1000 * i for i in range(len(refs))]
        return list(await asyncio.gather(*(self.group(ref, size, s) for ref, s in zip(refs, seeds, strict=True))))

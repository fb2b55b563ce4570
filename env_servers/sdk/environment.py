"""What an environment author writes: plain Python, no gRPC in sight.

An environment describes itself (`describe`), owns a task catalogue (`catalogue`) and starts
episodes (`start`). An episode turns the agent's raw text into the next observation. The SDK
(`gymwire.env_servers.sdk.server`) wraps any `Environment` in a conforming gRPC server: sessions,
TTLs, capacity, idempotent steps, turn limits, health, metrics. Game logic stays testable in-process.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gymwire.env_servers.sdk.errors import echo


class UnknownTask(KeyError):
    """Raised by a catalogue for a task id it cannot resolve (the server answers INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class Task:
    """One reproducible task: the same id always yields the same initial state."""

    id: str
    split: str
    difficulty: str
    category: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EnvDescription:
    """Static facts about an environment, served by GetInfo."""

    name: str
    version: str
    description: str
    instruction: str  # the env's own task prompt, identical for trainers in any language
    action_grammar: str  # the action syntax in words
    provides_valid_actions: bool = False
    provides_expert: bool = False
    default_max_turns: int = 30
    max_turns_limit: int = 200
    reward_min: float = 0.0
    reward_max: float = 1.0


# Well-known keys of a step's `info` (all optional; an env declares those that mean something in it).
# Trainers read them instead of parsing actions, e.g. to tag "committed without checking" failures.
INFO_COMMITTED = "committed"
INFO_VERIFIED = "verified"


@dataclass
class StepOutcome:
    """The result of one agent turn, before the SDK adds turn limits and valid actions.

    `info` is free-form, JSON-like (it travels as a protobuf Struct, so numbers arrive as floats).
    Well-known keys, which any environment may declare and trainers read as signals:

    - `committed: true` on the step that makes the episode's final, scored decision (a purchase, an
      answer): what the agent stakes the task on. Omitted on every other step. Environments where
      no action stakes the task (the episode ends only when the goal holds) do not declare it.
    - `verified: true` on a step that checked something a commit relies on (opened the product's
      details, retrieved the passage that holds the fact). On a committing step `verified` is the
      environment's own judgement, true or false, of whether that commit was checked; where a
      committing step omits it, any earlier `verified: true` step of the episode counts.

    A commit without a check is the failure mode "confirmation bias" (acting without verifying).
    """

    observation: str
    reward: float = 0.0
    terminated: bool = False
    success: bool = False
    action_valid: bool = True
    parsed_action: str = ""
    info: dict[str, Any] = field(default_factory=dict)


class Episode(ABC):
    """One running episode. The SDK serialises calls on an episode; it is never shared."""

    @abstractmethod
    def reset(self) -> str:
        """Return the first observation. Called exactly once, before any step."""

    @abstractmethod
    def step(self, text: str) -> StepOutcome:
        """Parse the agent's raw text turn with the env's own parser and apply it.

        Unparseable or illegal actions are not errors: return action_valid=False and an
        observation that says so, because the agent must learn from it.
        """

    def valid_actions(self) -> list[str] | None:
        """The legal actions now, or None when the environment does not provide them."""
        return None

    def expert_action(self) -> str | None:
        """The oracle's next action (the exact text to send as a turn), or None if there is none."""
        return None

    def state_key(self) -> str | None:
        """The environment's state now, as an opaque key for `Observation.state_key`; None (the default)
        sends none.

        Called after `reset` and after every step, the last one included. The rule: within one task, two
        calls return equal keys exactly when the environment is in the same state, whatever path led
        there. So the key holds everything that decides what later steps can show or earn (positions,
        contents, open or closed, what the agent holds, has retrieved or has seen where that changes
        what it can do, whether the episode is over) and nothing about the path: no turn or step
        counter (not even one that discounts a reward: the trainer knows the turn), no list of past
        actions, no record kept only for `info` signals or the expert. A step that changes nothing (an
        invalid action, a look) keeps the key. Trainers compare keys to find turns taken from the same
        state across a group's episodes (turn-level credit, as GiGPO's anchor states).

        Any string will do; `gymwire.env_servers.sdk.state_keys.hash_state(state)`, which the bundled
        environments use, gives the SHA-1 hex digest of the state's canonical JSON.
        """
        return None


FILTER_CACHE_SIZE = 256  # (split, difficulty, category) listings a catalogue keeps


class TaskCatalogue:
    """A listed set of tasks plus an optional resolver for ids outside the listing.

    Generators make unlimited tasks; the listing is the finite, paginated part a trainer
    enumerates, and `resolver` lets Reset accept any well-formed id (e.g. another seed).
    """

    def __init__(self, tasks: Iterable[Task], resolver: Callable[[str], Task | None] | None = None):
        self._tasks: list[Task] = list(tasks)
        self._by_id = {t.id: t for t in self._tasks}
        if len(self._by_id) != len(self._tasks):
            raise ValueError("task ids in a catalogue must be unique")
        self._resolver = resolver
        self._values = (
            {t.split for t in self._tasks},
            {t.difficulty for t in self._tasks},
            {t.category for t in self._tasks},
        )
        self._filtered: dict[tuple[str, str, str], list[Task]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, task_id: str) -> Task:
        task = self._by_id.get(task_id)
        if task is None and self._resolver is not None:
            task = self._resolver(task_id)
        if task is None:
            raise UnknownTask(task_id)
        return task

    def list(self, split: str = "", difficulty: str = "", category: str = "") -> Sequence[Task]:
        key = (split, difficulty, category)
        cached = self._filtered.get(key)
        if cached is not None:
            return cached
        # Filters come from clients: a value no task has matches nothing and is never remembered, and the
        # cache of real combinations is bounded, so arbitrary filters cannot grow the server's memory.
        if any(value and value not in known for value, known in zip(key, self._values, strict=True)):
            return ()
        found = [
            t
            for t in self._tasks
            if (not split or t.split == split)
            and (not difficulty or t.difficulty == difficulty)
            and (not category or t.category == category)
        ]
        if len(self._filtered) >= FILTER_CACHE_SIZE:
            self._filtered.pop(next(iter(self._filtered)))  # the oldest combination
        self._filtered[key] = found
        return found

    def sample(self, split: str = "", difficulty: str = "", category: str = "", seed: int = 0) -> Task:
        candidates = self.list(split, difficulty, category)
        if not candidates:
            raise UnknownTask(
                f"no task with split={echo(split)} difficulty={echo(difficulty)} category={echo(category)}"
            )
        return candidates[random.Random(seed).randrange(len(candidates))]

    def counts(self) -> dict[tuple[str, str, str], int]:
        """Number of listed tasks per (split, difficulty, category)."""
        out: dict[tuple[str, str, str], int] = {}
        for t in self._tasks:
            key = (t.split, t.difficulty, t.category)
            out[key] = out.get(key, 0) + 1
        return out


class Environment(ABC):
    """An environment: a description, a catalogue of tasks, and a way to start an episode."""

    @abstractmethod
    def describe(self) -> EnvDescription: ...

    @abstractmethod
    def catalogue(self) -> TaskCatalogue: ...

    @abstractmethod
    def start(self, task: Task) -> Episode:
        """A fresh episode of `task`, deterministic given the task."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (files, indices) when the server shuts down."""

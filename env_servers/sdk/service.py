"""The protocol's semantics over any `Environment`, independent of how requests arrive.

Unary handlers and the Session stream both call `EnvService`; it raises `ServiceError` for every
failure the contract names, so both transports report identical codes and messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from gymwire.env_servers.sdk.environment import Environment, Episode, Task, TaskCatalogue, UnknownTask
from gymwire.env_servers.sdk.errors import ServiceError, echo
from gymwire.env_servers.sdk.metrics import Metrics
from gymwire.env_servers.sdk.sessions import Session, SessionStore
from gymwire.v1 import environment_pb2 as pb

PROTOCOL_VERSION = "1.0"
# An env call that runs longer than this on the event loop moves env code to a thread for good.
INLINE_BUDGET_SECONDS = 0.05
log = logging.getLogger("gymwire.server")
T = TypeVar("T")
_UNLOCKED = contextlib.nullcontext()


@dataclass(frozen=True)
class ServiceLimits:
    max_sessions: int = 4096
    session_ttl_seconds: float = 600.0
    max_action_bytes: int = 16 * 1024
    max_page_size: int = 1000
    # The largest reply the server builds; the server sets it just under its message-size limit, since
    # a reply over that limit would fail in transport after the step was already applied.
    max_reply_bytes: int = 4 * 1024 * 1024 - 4096


class BadReply(ValueError):
    """The environment produced a reply the protocol cannot carry (non-finite reward, oversized, bad info)."""


def _task_pb(task: Task) -> pb.Task:
    return pb.Task(
        id=task.id, split=task.split, difficulty=task.difficulty, category=task.category, metadata=task.metadata
    )


def _state_key(episode: Episode) -> str:
    key = episode.state_key()
    if key is None:
        return ""
    if not isinstance(key, str):
        raise BadReply(f"state_key() returned {type(key).__name__}, not a string or None")
    return key


class EnvService:
    """Sessions over one environment. `executor` runs env code off the event loop when given."""

    def __init__(
        self,
        env: Environment,
        limits: ServiceLimits = ServiceLimits(),
        *,
        executor: Executor | None = None,
        metrics: Metrics | None = None,
        session_prefix: str = "",
    ):
        self.env = env
        self.limits = limits
        self.description = env.describe()
        self.catalogue: TaskCatalogue = env.catalogue()
        self.sessions = SessionStore(limits.max_sessions, limits.session_ttl_seconds, session_prefix)
        self.metrics = metrics or Metrics(enabled=False)
        self._executor = executor
        self._own_executor: ThreadPoolExecutor | None = None
        self.draining = False  # set on shutdown: open episodes continue, new ones are refused
        self._info = self._build_info()

    def _inline(self, fn: Callable[..., T], *args) -> T:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            if time.perf_counter() - started > INLINE_BUDGET_SECONDS:
                self._move_off_the_loop()

    def _move_off_the_loop(self) -> None:
        # Env code on the event loop is fastest for quick envs, but a slow call there stalls health checks
        # and every other session. One thread keeps the env's calls one at a time, as on the loop.
        log.warning(
            "an environment call took over %.0f ms on the event loop; env code runs in a thread from now on "
            "(serve with --threads N to start that way)",
            INLINE_BUDGET_SECONDS * 1000,
        )
        self._executor = self._own_executor = ThreadPoolExecutor(1, thread_name_prefix="env")

    def shutdown(self) -> None:
        """Stop the thread this service started for a slow environment, if any."""
        if self._own_executor is not None:
            self._own_executor.shutdown(wait=False, cancel_futures=True)

    def _build_info(self) -> pb.GetInfoResponse:
        d = self.description
        counts = self.catalogue.counts()
        catalogue = pb.Catalogue(
            splits=sorted({k[0] for k in counts}),
            difficulties=sorted({k[1] for k in counts}),
            categories=sorted({k[2] for k in counts if k[2]}),
            counts=[
                pb.CatalogueCount(split=s, difficulty=dd, category=c, count=n)
                for (s, dd, c), n in sorted(counts.items())
            ],
        )
        features = pb.Features(
            provides_valid_actions=d.provides_valid_actions,
            provides_expert=d.provides_expert,
            default_max_turns=d.default_max_turns,
            max_turns_limit=d.max_turns_limit,
            reward_min=d.reward_min,
            reward_max=d.reward_max,
            max_action_bytes=self.limits.max_action_bytes,
            max_sessions=self.limits.max_sessions,
            session_ttl_seconds=int(self.limits.session_ttl_seconds),
        )
        return pb.GetInfoResponse(
            name=d.name,
            env_version=d.version,
            protocol_version=PROTOCOL_VERSION,
            description=d.description,
            instruction=d.instruction,
            action_grammar=d.action_grammar,
            features=features,
            catalogue=catalogue,
        )

    def get_info(self) -> pb.GetInfoResponse:
        return self._info

    def list_tasks(self, request: pb.ListTasksRequest) -> pb.ListTasksResponse:
        tasks = self.catalogue.list(request.split, request.difficulty, request.category)
        size = min(request.page_size or self.limits.max_page_size, self.limits.max_page_size)
        try:
            start = int(request.page_token) if request.page_token else 0
        except ValueError:
            raise ServiceError.invalid_argument(f"page_token {echo(request.page_token)} was not issued here") from None
        if start < 0 or start > len(tasks):
            raise ServiceError.invalid_argument(f"page_token {echo(request.page_token)} is out of range")
        page: list[pb.Task] = []
        budget = self.limits.max_reply_bytes - 64
        for task in tasks[start : start + size]:
            item = _task_pb(task)
            budget -= item.ByteSize() + 8  # the field's tag and length prefix
            if budget < 0 and page:
                break  # a shorter page: the rest follows with next_page_token
            page.append(item)
        end = start + len(page)
        return pb.ListTasksResponse(
            tasks=page, next_page_token=str(end) if end < len(tasks) else "", total_size=len(tasks)
        )

    def _resolve_task(self, request: pb.ResetRequest) -> Task:
        target = request.WhichOneof("target")
        try:
            if target == "task_id":
                return self.catalogue.get(request.task_id)
            if target == "sample":
                s = request.sample
                return self.catalogue.sample(s.split, s.difficulty, s.category, s.seed)
        except UnknownTask as exc:
            what = f"task id {echo(request.task_id)}" if target == "task_id" else exc.args[0]
            raise ServiceError.invalid_argument(f"unknown task: {what}; see ListTasks") from None
        raise ServiceError.invalid_argument("Reset needs a task_id or a sample")

    async def reset(self, request: pb.ResetRequest) -> tuple[Session, pb.ResetResponse]:
        if self.draining:
            raise ServiceError.unavailable("server is shutting down; start the episode on another replica")
        task = self._resolve_task(request)
        d = self.description
        max_turns = request.options.max_turns or stated_turn_limit(task) or d.default_max_turns
        if max_turns > d.max_turns_limit:
            raise ServiceError.invalid_argument(f"max_turns {max_turns} exceeds this env's limit {d.max_turns_limit}")
        include_valid_actions = request.options.include_valid_actions
        if include_valid_actions and not d.provides_valid_actions:
            raise ServiceError.invalid_argument(f"{d.name} does not provide valid actions")
        self.sessions.ensure_capacity()  # before the env does any work
        episode, obs = await self._guard(None, self._start, task, include_valid_actions)
        session = Session(self.sessions.new_id(), task, episode, max_turns, include_valid_actions)
        self.sessions.add(session)
        self.metrics.session_opened(len(self.sessions))
        return session, pb.ResetResponse(session_id=session.id, task=_task_pb(task), observation=obs)

    def _start(self, task: Task, include_valid_actions: bool) -> tuple[Episode, pb.Observation]:
        episode = self.env.start(task)
        obs = pb.Observation(text=episode.reset(), action_valid=True, state_key=_state_key(episode))
        if include_valid_actions:
            obs.valid_actions.extend(episode.valid_actions() or [])
            obs.valid_actions_included = True
        self._check_size(obs, "first observation")
        return episode, obs

    async def step(self, request: pb.StepRequest) -> pb.Observation:
        started = time.perf_counter() if self.metrics.enabled else 0.0
        session = self.sessions.get(request.session_id)
        if (
            len(request.action) > self.limits.max_action_bytes // 4
            and len(request.action.encode()) > self.limits.max_action_bytes
        ):
            raise ServiceError.invalid_argument(
                f"action is {len(request.action.encode())} bytes; this server accepts at most "
                f"{self.limits.max_action_bytes}"
            )
        # Env code on the loop runs a step without suspending, so no other call can interleave: the lock
        # is only needed when env code runs in a thread, or when a call that took it is still running.
        async with session.lock if self._executor is not None or session.lock.locked() else _UNLOCKED:
            try:
                if request.HasField("step_index"):
                    if request.step_index == session.turn - 1 and session.last_reply is not None:
                        return session.last_reply  # a retry: never step twice
                    if request.step_index != session.turn:
                        raise ServiceError.failed_precondition(
                            f"step_index {request.step_index} does not follow this session's {session.turn} steps"
                        )
                if session.done:
                    raise ServiceError.failed_precondition(
                        f"episode of session {echo(session.id)} ended at turn {session.turn}; Reset to play again"
                    )
                # The whole reply is built and checked in the guard: a step counts only once it can be sent.
                obs = await self._guard(session, self._play, session, request.action)
                session.turn = obs.turn
                session.done = obs.terminated or obs.truncated
                session.last_reply = obs
            finally:
                session.last_used = time.monotonic()  # idle time counts from the end of the request
        if started:
            self.metrics.step_done(time.perf_counter() - started)
        return obs

    def _play(self, session: Session, action: str) -> pb.Observation:
        outcome = session.episode.step(action)
        if not math.isfinite(outcome.reward):
            raise BadReply(f"reward {outcome.reward!r} is not a finite number")
        turn = session.turn + 1
        truncated = not outcome.terminated and turn >= session.max_turns
        obs = pb.Observation(
            text=outcome.observation,
            reward=outcome.reward,
            terminated=outcome.terminated,
            truncated=truncated,
            success=outcome.success,
            action_valid=outcome.action_valid,
            parsed_action=outcome.parsed_action,
            turn=turn,
            state_key=_state_key(session.episode),
        )
        if outcome.info:
            try:
                obs.info.update(outcome.info)
            except (ValueError, TypeError, AttributeError) as exc:
                raise BadReply(f"step info cannot travel as a protobuf Struct: {exc}") from None
        if session.include_valid_actions and not (outcome.terminated or truncated):
            obs.valid_actions.extend(session.episode.valid_actions() or [])
            obs.valid_actions_included = True
        self._check_size(obs, "observation")
        return obs

    def _check_size(self, reply, what: str) -> None:
        size = reply.ByteSize()
        if size > self.limits.max_reply_bytes:
            raise BadReply(f"{what} is {size} bytes; this server sends at most {self.limits.max_reply_bytes}")

    async def valid_actions(self, request: pb.ValidActionsRequest) -> pb.ValidActionsResponse:
        session = self.sessions.get(request.session_id)
        if not self.description.provides_valid_actions:
            return pb.ValidActionsResponse(provided=False)
        async with session.lock:
            try:
                actions = [] if session.done else await self._guard(session, self._valid_actions, session)
            finally:
                session.last_used = time.monotonic()
        return pb.ValidActionsResponse(provided=actions is not None, actions=actions or [])

    def _valid_actions(self, session: Session) -> list[str] | None:
        actions = session.episode.valid_actions()
        if actions is not None:
            self._check_size(pb.ValidActionsResponse(actions=actions), "valid actions list")
        return actions

    async def expert_action(self, request: pb.ExpertActionRequest) -> pb.ExpertActionResponse:
        session = self.sessions.get(request.session_id)
        if not self.description.provides_expert:
            return pb.ExpertActionResponse(provided=False)
        async with session.lock:
            try:
                action = None if session.done else await self._guard(session, session.episode.expert_action)
            finally:
                session.last_used = time.monotonic()
        return pb.ExpertActionResponse(provided=action is not None, action=action or "")

    def close(self, request: pb.CloseRequest) -> pb.CloseResponse:
        was_open = self.sessions.remove(request.session_id)
        if was_open:
            self.metrics.session_closed(len(self.sessions))
        return pb.CloseResponse(was_open=was_open)

    async def _guard(self, session: Session | None, fn: Callable[..., T], *args) -> T:
        """Run env code; an exception is a bug in the env: drop the session, answer INTERNAL, keep serving."""
        try:
            if self._executor is None:
                return self._inline(fn, *args)
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except Exception as exc:
            sid = session.id if session else "(new)"
            log.exception("environment error in session %s", sid)
            if session is not None:
                self.sessions.remove(session.id)
                self.metrics.session_closed(len(self.sessions))
            raise ServiceError.internal(
                f"environment error ({type(exc).__name__}: {echo(str(exc), 500)}); session {sid} was dropped"
            ) from None

    def sweep(self) -> int:
        expired = self.sessions.expire()
        if expired:
            self.metrics.session_closed(len(self.sessions))
        return len(expired)


def stated_turn_limit(task: Task) -> int:
    """The turn limit a task states in its metadata (`max_turns`), 0 where it states none: a Reset
    without max_turns gets it, so tasks that need very different budgets each get their own."""
    try:
        return max(0, int(task.metadata.get("max_turns", 0)))
    except ValueError:
        return 0

"""The echo environment of bench/echo_env.py for OpenEnv (openenv-core), served and driven its own way.

Two servers: `app_async` overrides `reset_async` / `step_async` (run on the event loop, OpenEnv's
fastest path) and is served on uvloop + httptools; `app_sync` is a plain `Environment` (OpenEnv runs
each call in its thread pool), served with uvicorn's defaults when only openenv-core is installed
(asyncio loop, h11). Clients are OpenEnv's own `EnvClient`: one WebSocket per session.
"""

from __future__ import annotations

from typing import Any

from openenv.core import EnvClient
from openenv.core.client_types import StepResult
from openenv.core.env_server.http_server import create_fastapi_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State

from bench.echo_env import EPISODE_STEPS, FIRST_TEXT, echo_text

MAX_SESSIONS = 8192


class EchoAction(Action):
    message: str


class EchoObservation(Observation):
    text: str = ""


class SyncEcho(Environment):
    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> EchoObservation:
        self.steps = 0
        return EchoObservation(text=FIRST_TEXT, done=False, reward=0.0)

    def step(self, action: EchoAction, timeout_s: float | None = None, **kwargs: Any) -> EchoObservation:  # type: ignore[override]
        self.steps += 1
        return EchoObservation(text=echo_text(action.message), done=self.steps >= EPISODE_STEPS, reward=0.0)

    @property
    def state(self) -> State:
        return State(step_count=self.steps)


class AsyncEcho(SyncEcho):
    async def reset_async(
        self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any
    ) -> EchoObservation:
        return self.reset()

    async def step_async(self, action: EchoAction, timeout_s: float | None = None, **kwargs: Any) -> EchoObservation:  # type: ignore[override]
        return self.step(action)


app_sync = create_fastapi_app(SyncEcho, EchoAction, EchoObservation, max_concurrent_envs=MAX_SESSIONS)
app_async = create_fastapi_app(AsyncEcho, EchoAction, EchoObservation, max_concurrent_envs=MAX_SESSIONS)


class EchoClient(EnvClient[EchoAction, EchoObservation, State]):
    def _step_payload(self, action: EchoAction) -> dict[str, Any]:
        return {"message": action.message}

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[EchoObservation]:
        obs = payload.get("observation", {})
        observation = EchoObservation(
            text=obs.get("text", ""), done=payload.get("done", False), reward=payload.get("reward")
        )
        return StepResult(observation=observation, reward=payload.get("reward"), done=payload.get("done", False))

    def _parse_state(self, payload: dict[str, Any]) -> State:
        return State(**payload)

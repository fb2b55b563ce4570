"""Blocking client: the asyncio client driven on a private event loop thread.

One implementation of the protocol's client logic (retries, step indices, aborts) serves both
styles; the sync wrapper costs tens of microseconds per call, which scripts and the CLI never notice.
"""

from __future__ import annotations

from typing import Any

from gymwire.client.aio import AsyncEnvClient, AsyncEpisode
from gymwire.client.connection import ChannelOptions
from gymwire.client.loop_thread import LoopThread
from gymwire.v1 import environment_pb2 as pb


class EnvClient:
    """`EnvClient("127.0.0.1:50051").reset(task_id).step("Action: ...")`."""

    def __init__(self, address: str, options: ChannelOptions | None = None):
        self._loop = LoopThread()
        self._client: AsyncEnvClient = self._loop.run(_make_client(address, options))
        self.address = address

    def info(self, refresh: bool = False) -> pb.GetInfoResponse:
        return self._loop.run(self._client.info(refresh))

    def list_tasks(
        self, split: str = "", difficulty: str = "", category: str = "", limit: int | None = None
    ) -> list[pb.Task]:
        return self._loop.run(self._client.list_tasks(split, difficulty, category, limit))

    def reset(self, task_id: str | None = None, **kwargs: Any) -> Episode:
        """Start an episode; keywords as `AsyncEnvClient.reset` (e.g. transport="session")."""
        return Episode(self._loop, self._loop.run(self._client.reset(task_id, **kwargs)))

    def health(self, timeout: float = 5.0) -> bool:
        return self._loop.run(self._client.health(timeout))

    def close(self) -> None:
        self._loop.run(self._client.close())
        self._loop.close()

    def __enter__(self) -> EnvClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


async def _make_client(address: str, options: ChannelOptions | None) -> AsyncEnvClient:
    return AsyncEnvClient(address, options)  # the aio channel must be created on its loop


class Episode:
    def __init__(self, loop: LoopThread, episode: AsyncEpisode):
        self._loop = loop
        self._episode = episode

    session_id = property(lambda self: self._episode.session_id)
    task = property(lambda self: self._episode.task)
    observation = property(lambda self: self._episode.observation)
    done = property(lambda self: self._episode.done)
    turn = property(lambda self: self._episode.turn)

    def step(self, text: str) -> pb.Observation:
        return self._loop.run(self._episode.step(text))

    def valid_actions(self) -> list[str] | None:
        return self._loop.run(self._episode.valid_actions())

    def expert_action(self) -> str | None:
        return self._loop.run(self._episode.expert_action())

    def close(self) -> None:
        self._loop.run(self._episode.close())

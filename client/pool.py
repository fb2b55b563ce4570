"""A pool over many addresses: several environments, several replicas of each.

Resets go round-robin to replicas that are up; a replica that fails with UNAVAILABLE or a deadline
is set aside for `cooloff` seconds and the Reset moves on to the next one. An episode stays on the
replica that started it (sessions live there); when that replica dies the episode is aborted.
A server with several worker processes on one address counts as one replica per worker: the pool
holds a connection to each (GetInfo names the worker), so its episodes use every process.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable
from typing import Any

import grpc

from gymwire.client.aio import AsyncEnvClient, AsyncEpisode
from gymwire.client.connection import ChannelOptions, EpisodeAborted, GymwireError
from gymwire.v1 import environment_pb2 as pb

_REPLICA_FAILURES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# A full replica is back-pressure, not a failure: the next one is tried, and when all are full the
# Reset waits these many seconds between rounds before it reports the episode aborted.
_FULL_WAITS = (0.2, 0.5, 1.0)


class EnvPool:
    def __init__(
        self,
        addresses: Iterable[str],
        options: ChannelOptions | None = None,
        cooloff: float = 5.0,
        worker_attempts: int = 8,
    ):
        self.addresses = list(dict.fromkeys(addresses))
        if not self.addresses:
            raise ValueError("EnvPool needs at least one address")
        self.options = options
        self.cooloff = cooloff
        self.worker_attempts = worker_attempts  # connections tried per worker of a multi-process server
        self.replicas: dict[str, list[AsyncEnvClient]] = {}
        self._down_until: dict[str, float] = {}
        self._turns: dict[str, itertools.count] = {}

    async def connect(self) -> EnvPool:
        """Ask every address which environment it serves; fail clearly on any unreachable one."""
        clients = [AsyncEnvClient(a, self.options) for a in self.addresses]
        infos = await asyncio.gather(*(c.info() for c in clients), return_exceptions=True)
        failed = [f"{c.address}: {i}" for c, i in zip(clients, infos, strict=True) if isinstance(i, BaseException)]
        if failed:
            await asyncio.gather(*(c.close() for c in clients))
            raise GymwireError(grpc.StatusCode.UNAVAILABLE, "cannot reach " + "; ".join(failed))
        for client, info in zip(clients, infos, strict=True):
            assert not isinstance(info, BaseException)
            self.replicas.setdefault(info.name, []).extend(await self._every_worker(client, info))
            self._turns.setdefault(info.name, itertools.count())
        return self

    async def _every_worker(self, first: AsyncEnvClient, info: pb.GetInfoResponse) -> list[AsyncEnvClient]:
        """One client per worker process of a multi-process server, so episodes spread over all of them.

        The kernel assigns each new connection to a worker at random; connections are opened until
        each worker has answered once (or the attempts run out: fewer workers are used, none fail)."""
        count = info.worker.count
        if count <= 1:
            return [first]
        by_worker = {info.worker.index: first}
        for _ in range(self.worker_attempts * count):
            if len(by_worker) == count:
                break
            client = AsyncEnvClient(first.address, self.options)
            try:
                index = (await client.info()).worker.index
            except GymwireError:
                index = None
            if index is None or index in by_worker:
                await client.close()
            else:
                by_worker[index] = client
        return [by_worker[i] for i in sorted(by_worker)]

    @property
    def env_names(self) -> list[str]:
        return list(self.replicas)

    def _clients(self, env: str) -> list[AsyncEnvClient]:
        try:
            return self.replicas[env]
        except KeyError:
            raise GymwireError(
                grpc.StatusCode.NOT_FOUND, f"no server for environment {env!r}; connected: {', '.join(self.replicas)}"
            ) from None

    def _ordered(self, env: str) -> list[AsyncEnvClient]:
        """Replicas in round-robin order, those that are up first."""
        clients = self._clients(env)
        start = next(self._turns[env]) % len(clients)
        rotated = clients[start:] + clients[:start]
        now = time.monotonic()
        return sorted(rotated, key=lambda c: self._down_until.get(c.address, 0.0) > now)

    def mark_down(self, client: AsyncEnvClient) -> None:
        self._down_until[client.address] = time.monotonic() + self.cooloff

    async def info(self, env: str) -> pb.GetInfoResponse:
        return await self._clients(env)[0].info()

    async def list_tasks(
        self, env: str, split: str = "", difficulty: str = "", category: str = "", limit: int | None = None
    ) -> list[pb.Task]:
        return await self._first_answer(env, lambda c: c.list_tasks(split, difficulty, category, limit))

    async def reset(self, env: str, task_id: str | None = None, **kwargs: Any) -> AsyncEpisode:
        """Start an episode on a healthy replica; EpisodeAborted when none can take it (down, full, failing).
        Keywords as `AsyncEnvClient.reset` (e.g. transport="multiplex")."""
        for wait in (*_FULL_WAITS, None):
            try:
                return await self._first_answer(env, lambda c: c.reset(task_id, **kwargs))
            except GymwireError as exc:
                if not isinstance(exc, EpisodeAborted) and exc.code not in _REPLICA_FAILURES:
                    raise  # the request itself is wrong (unknown task, bad option)
                if exc.code != grpc.StatusCode.RESOURCE_EXHAUSTED or wait is None:
                    message = f"no replica of {env} could start the episode: {exc.message}"
                    raise EpisodeAborted(exc.code, message, exc.address) from None
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _first_answer(self, env: str, call):
        last: GymwireError | None = None
        for client in self._ordered(env):
            try:
                return await call(client)
            except GymwireError as exc:
                if exc.code not in _REPLICA_FAILURES and not isinstance(exc, EpisodeAborted):
                    raise
                if exc.code in _REPLICA_FAILURES:
                    self.mark_down(client)
                last = exc
        assert last is not None
        raise last

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for cs in self.replicas.values() for c in cs))

    async def __aenter__(self) -> EnvPool:
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        await self.close()

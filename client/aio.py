"""asyncio client for one gymwire server, and its episodes."""

from __future__ import annotations

import warnings

import grpc

from gymwire.client.connection import ChannelOptions, GymwireError
from gymwire.client.multiplex import Multiplexer
from gymwire.client.requests import list_request, reset_request
from gymwire.client.transports import TRANSPORTS, Connection, SessionTransport, Transport, UnaryTransport
from gymwire.v1 import environment_pb2 as pb


class AsyncEnvClient:
    """One channel to one server. Safe to share between coroutines of one event loop."""

    def __init__(self, address: str, options: ChannelOptions | None = None):
        self.address = address
        self.options = options or ChannelOptions()
        self.connection = Connection(address, self.options)
        self._info: pb.GetInfoResponse | None = None
        self._multiplexer = Multiplexer(self.connection)  # opens its stream on first use

    async def info(self, refresh: bool = False) -> pb.GetInfoResponse:
        if self._info is None or refresh:
            self._info = await self.connection.unary("GetInfo", pb.GetInfoRequest())
        return self._info

    async def list_tasks(
        self, split: str = "", difficulty: str = "", category: str = "", limit: int | None = None
    ) -> list[pb.Task]:
        tasks: list[pb.Task] = []
        token = ""
        while True:
            page = await self.connection.unary("ListTasks", list_request(split, difficulty, category, token))
            tasks.extend(page.tasks)
            token = page.next_page_token
            if not token or (limit is not None and len(tasks) >= limit):
                return tasks[:limit] if limit is not None else tasks

    async def reset(
        self,
        task_id: str | None = None,
        *,
        split: str = "",
        difficulty: str = "",
        category: str = "",
        seed: int | None = None,
        include_valid_actions: bool = False,
        max_turns: int = 0,
        transport: str | None = None,
        stream: bool | None = None,
        multiplex: bool | None = None,
    ) -> AsyncEpisode:
        """Start an episode over `transport`:

        - "unary" (the default): one call per operation; the session lives until Close or its TTL.
        - "session": one Session stream for this episode: cheaper per step than unary calls, and the
          server frees the session the moment the stream ends.
        - "multiplex": every episode of this client shares one Multiplex stream, the cheapest path by
          far; against a server without it the episode falls back to its own Session stream.

        `stream=True` and `multiplex=True` are the deprecated spellings of "session" and "multiplex"."""
        if stream is not None or multiplex is not None:
            transport = _deprecated_transport(transport, stream, multiplex)
        elif transport is None:
            transport = "unary"
        elif transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        request = reset_request(task_id, split, difficulty, category, seed, include_valid_actions, max_turns)
        if transport == "multiplex":
            if self._multiplexer.supported:
                started = await self._multiplexer.reset(request)
                if started is not None:
                    return AsyncEpisode(self, started[0], started[1])
            transport = "session"
        chosen: Transport = (
            SessionTransport(self.connection) if transport == "session" else UnaryTransport(self.connection)
        )
        try:
            response = await chosen.call("reset", request)
        except BaseException:
            await chosen.end()
            raise
        return AsyncEpisode(self, response, chosen)

    async def health(self, timeout: float = 5.0) -> bool:
        """True when the server's health service says SERVING."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            reply = await health_pb2_grpc.HealthStub(self.connection.channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def close(self) -> None:
        await self._multiplexer.aclose()
        await self.connection.close()

    async def __aenter__(self) -> AsyncEnvClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def _deprecated_transport(transport: str | None, stream: bool | None, multiplex: bool | None) -> str:
    if transport is not None:
        raise TypeError("pass transport=... alone, without the deprecated stream= or multiplex=")
    warnings.warn(
        "reset(stream=..., multiplex=...) is deprecated and will be removed in the next release; "
        'pass transport="multiplex", "session" or "unary"',
        DeprecationWarning,
        stacklevel=3,
    )
    return "multiplex" if multiplex else "session" if stream else "unary"


class AsyncEpisode:
    """A running episode. `step` sends step_index, so a retried step never applies twice."""

    def __init__(
        self,
        client: AsyncEnvClient,
        reset: pb.ResetResponse,
        transport: Transport | None = None,
    ):
        self.client = client
        self.session_id = reset.session_id
        self.task = reset.task
        self.observation = reset.observation
        self.turn = 0
        self._transport = transport or UnaryTransport(client.connection)

    @property
    def done(self) -> bool:
        return self.observation.terminated or self.observation.truncated

    @property
    def transport(self) -> str:
        """The transport this episode runs on: "multiplex", "session" or "unary"."""
        return self._transport.name

    @property
    def streaming(self) -> bool:
        """True on its own Session stream."""
        return self._transport.name == "session"

    async def step(self, text: str) -> pb.Observation:
        if self.done:
            raise GymwireError(grpc.StatusCode.FAILED_PRECONDITION, "episode already ended", self.client.address)
        request = pb.StepRequest(session_id=self.session_id, action=text, step_index=self.turn)
        reply = await self._transport.call("step", request)
        self.observation = reply.observation
        self.turn += 1
        return self.observation

    async def valid_actions(self) -> list[str] | None:
        reply = await self._transport.call("valid_actions", pb.ValidActionsRequest(session_id=self.session_id))
        return list(reply.actions) if reply.provided else None

    async def expert_action(self) -> str | None:
        reply = await self._transport.call("expert_action", pb.ExpertActionRequest(session_id=self.session_id))
        return reply.action if reply.provided else None

    async def close(self) -> None:
        try:
            await self._transport.call("close", pb.CloseRequest(session_id=self.session_id), timeout=5.0)
        except GymwireError:
            pass  # the server is gone or the session already expired: nothing left to free
        finally:
            await self._transport.end()

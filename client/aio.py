"""asyncio client for one gymwire server, and its episodes."""

from __future__ import annotations

import asyncio

import grpc

from gymwire.client.connection import ChannelOptions, EpisodeAborted, GymwireError, call_error, error_from_rpc
from gymwire.client.multiplex import Multiplexer, MultiplexTransport
from gymwire.client.requests import list_request, reset_request
from gymwire.v1 import environment_pb2 as pb
from gymwire.v1 import environment_pb2_grpc as pb_grpc
from gymwire.v1.wire import OPERATIONS, final_status, status_of


class AsyncEnvClient:
    """One channel to one server. Safe to share between coroutines of one event loop."""

    def __init__(self, address: str, options: ChannelOptions | None = None):
        self.address = address
        self.options = options or ChannelOptions()
        creds = self.options.credentials()
        grpc_options = self.options.grpc_options()
        self._channel = (
            grpc.aio.secure_channel(address, creds, grpc_options)
            if creds
            else grpc.aio.insecure_channel(address, grpc_options)
        )
        self._stub = pb_grpc.EnvironmentServiceStub(self._channel)
        self._info: pb.GetInfoResponse | None = None
        self._multiplexer = Multiplexer(self)  # opens its stream on first use

    async def _call(self, method: str, request, *, op: str | None = None, timeout: float | None = None):
        try:
            return await getattr(self._stub, method)(
                request, timeout=timeout or self.options.timeout, metadata=self.options.metadata()
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, self.address, op) from None

    async def info(self, refresh: bool = False) -> pb.GetInfoResponse:
        if self._info is None or refresh:
            self._info = await self._call("GetInfo", pb.GetInfoRequest())
        return self._info

    async def list_tasks(
        self, split: str = "", difficulty: str = "", category: str = "", limit: int | None = None
    ) -> list[pb.Task]:
        tasks: list[pb.Task] = []
        token = ""
        while True:
            page = await self._call("ListTasks", list_request(split, difficulty, category, token))
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
        stream: bool = False,
        multiplex: bool = False,
    ) -> AsyncEpisode:
        """Start an episode. `stream=True` runs it over one Session stream: cheaper per step than
        unary calls, and the server frees the session the moment the stream ends. `multiplex=True`
        shares one Multiplex stream among all episodes of this client, the cheapest path by far;
        against a server without it the episode falls back to its own Session stream."""
        request = reset_request(task_id, split, difficulty, category, seed, include_valid_actions, max_turns)
        if multiplex and self._multiplexer.supported:
            started = await self._multiplexer.reset(request)
            if started is not None:
                return AsyncEpisode(self, started[0], started[1])
            stream = True
        if stream:
            transport = _StreamTransport(self)
            try:
                response = await transport.call("reset", request)
            except BaseException:
                await transport.end()
                raise
            return AsyncEpisode(self, response, transport)
        response = await self._call("Reset", request, op="reset")
        return AsyncEpisode(self, response, _UnaryTransport(self))

    async def health(self, timeout: float = 5.0) -> bool:
        """True when the server's health service says SERVING."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            reply = await health_pb2_grpc.HealthStub(self._channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING

    async def close(self) -> None:
        await self._multiplexer.aclose()
        await self._channel.close()

    async def __aenter__(self) -> AsyncEnvClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class _UnaryTransport:
    def __init__(self, client: AsyncEnvClient):
        self.client = client

    async def call(self, op: str, request, timeout: float | None = None):
        return await self.client._call(OPERATIONS[op].method, request, op=op, timeout=timeout)

    async def end(self) -> None:
        return None


class _StreamTransport:
    """One Session stream; operations on it run one at a time, replies arrive in order."""

    def __init__(self, client: AsyncEnvClient):
        self.client = client
        self._call = client._stub.Session(metadata=client.options.metadata())
        self._lock = asyncio.Lock()

    async def call(self, op: str, request, timeout: float | None = None):
        async with self._lock:
            try:
                await self._call.write(pb.SessionRequest(**{op: request}))
                reply = await asyncio.wait_for(self._call.read(), timeout or self.client.options.timeout)
            except TimeoutError:
                self._call.cancel()
                raise EpisodeAborted(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    "Session stream: no reply within the deadline",
                    self.client.address,
                ) from None
            except (grpc.RpcError, asyncio.InvalidStateError) as exc:
                raise await self._ended(exc, op) from None
            if reply is grpc.aio.EOF:
                raise await self._ended(None, op)
        if reply.WhichOneof("result") == "error":
            raise call_error(status_of(reply.error), reply.error.message, self.client.address, op)
        return getattr(reply, op)

    async def _ended(self, exc: BaseException | None, op: str) -> GymwireError:
        """Why the stream ended under an operation (its own status: a full server, a dead one, bad auth)."""
        fallback = repr(exc) if exc is not None else "Session stream closed by the server"
        code, details = await final_status(self._call, (grpc.StatusCode.UNAVAILABLE, fallback))
        return call_error(code, details, self.client.address, op)

    async def end(self) -> None:
        try:
            await self._call.done_writing()
        except (grpc.RpcError, asyncio.InvalidStateError):
            pass
        self._call.cancel()


class AsyncEpisode:
    """A running episode. `step` sends step_index, so a retried step never applies twice."""

    def __init__(
        self,
        client: AsyncEnvClient,
        reset: pb.ResetResponse,
        transport: _UnaryTransport | _StreamTransport | MultiplexTransport | None = None,
    ):
        self.client = client
        self.session_id = reset.session_id
        self.task = reset.task
        self.observation = reset.observation
        self.turn = 0
        self._transport = transport or _UnaryTransport(client)

    @property
    def done(self) -> bool:
        return self.observation.terminated or self.observation.truncated

    @property
    def streaming(self) -> bool:
        return isinstance(self._transport, _StreamTransport)

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

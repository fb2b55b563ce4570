"""How an episode's operations reach the server: one small interface, three transports.

`Transport.call(op, request)` sends one episode operation (an `OPERATIONS` name: "reset", "step",
...) and returns its response or raises the call's `GymwireError`; `end()` releases what the
transport holds. Unary calls and the Session stream live here; the Multiplex stream, which many
episodes share, lives in multiplex.py. Each takes a `Connection` (a channel and its call settings),
never a client, so transports import no client and the client imports them all.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import grpc

from gymwire.client.connection import ChannelOptions, EpisodeAborted, GymwireError, call_error, error_from_rpc
from gymwire.v1 import environment_pb2 as pb
from gymwire.v1 import environment_pb2_grpc as pb_grpc
from gymwire.v1.wire import OPERATIONS, final_status, status_of

TRANSPORTS = ("multiplex", "session", "unary")


class Connection:
    """One gRPC channel to one server, and the deadline and metadata every call on it carries."""

    def __init__(self, address: str, options: ChannelOptions):
        self.address = address
        self.options = options
        creds = options.credentials()
        grpc_options = options.grpc_options()
        self.channel = (
            grpc.aio.secure_channel(address, creds, grpc_options)
            if creds
            else grpc.aio.insecure_channel(address, grpc_options)
        )
        self._stub = pb_grpc.EnvironmentServiceStub(self.channel)

    async def unary(self, method: str, request: Any, *, op: str | None = None, timeout: float | None = None) -> Any:
        """One unary RPC (`method` as the service names it); `op` names the episode operation, if any."""
        try:
            return await getattr(self._stub, method)(
                request, timeout=timeout or self.options.timeout, metadata=self.options.metadata()
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, self.address, op) from None

    def open_stream(self, method: str) -> Any:
        """A new bidirectional stream call ("Session" or "Multiplex")."""
        return getattr(self._stub, method)(metadata=self.options.metadata())

    async def close(self) -> None:
        await self.channel.close()


class Transport(Protocol):
    """What an episode needs from the wire."""

    name: str  # one of TRANSPORTS

    async def call(self, op: str, request: Any, timeout: float | None = None) -> Any: ...

    async def end(self) -> None: ...


class UnaryTransport:
    """One unary call per operation; the session lives on the server until Close or its TTL."""

    name = "unary"

    def __init__(self, connection: Connection):
        self.connection = connection

    async def call(self, op: str, request: Any, timeout: float | None = None) -> Any:
        return await self.connection.unary(OPERATIONS[op].method, request, op=op, timeout=timeout)

    async def end(self) -> None:
        return None


class SessionTransport:
    """One Session stream; operations on it run one at a time, replies arrive in order."""

    name = "session"

    def __init__(self, connection: Connection):
        self.connection = connection
        self._call = connection.open_stream("Session")
        self._lock = asyncio.Lock()

    async def call(self, op: str, request: Any, timeout: float | None = None) -> Any:
        async with self._lock:
            try:
                await self._call.write(pb.SessionRequest(**{op: request}))
                reply = await asyncio.wait_for(self._call.read(), timeout or self.connection.options.timeout)
            except TimeoutError:
                self._call.cancel()
                raise EpisodeAborted(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    "Session stream: no reply within the deadline",
                    self.connection.address,
                ) from None
            except (grpc.RpcError, asyncio.InvalidStateError) as exc:
                raise await self._ended(exc, op) from None
            if reply is grpc.aio.EOF:
                raise await self._ended(None, op)
        if reply.WhichOneof("result") == "error":
            raise call_error(status_of(reply.error), reply.error.message, self.connection.address, op)
        return getattr(reply, op)

    async def _ended(self, exc: BaseException | None, op: str) -> GymwireError:
        """Why the stream ended under an operation (its own status: a full server, a dead one, bad auth)."""
        fallback = repr(exc) if exc is not None else "Session stream closed by the server"
        code, details = await final_status(self._call, (grpc.StatusCode.UNAVAILABLE, fallback))
        return call_error(code, details, self.connection.address, op)

    async def end(self) -> None:
        try:
            await self._call.done_writing()
        except (grpc.RpcError, asyncio.InvalidStateError):
            pass
        self._call.cancel()

"""The Multiplex stream on the client: every episode of one channel shares one stream.

Each episode's operation goes into a buffer; the buffer is written as one message once every
coroutine that is ready in this turn of the event loop has added its operation, so the steps of many
episodes cross the wire (and gRPC's Python layer) as one message, and their results come back the
same way. Deadlines are checked by one watchdog instead of a timer per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from typing import Any

import grpc

from gymwire.client.connection import EpisodeAborted, GymwireError, call_error
from gymwire.client.transports import Connection
from gymwire.v1 import environment_pb2 as pb
from gymwire.v1.wire import chunks, final_status, status_of

_Waiter = tuple["asyncio.Future[pb.MultiplexResult] | None", float]  # None: a result nobody waits for


class Multiplexer:
    """One Multiplex stream of a connection, opened on first use and again after it fails."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.supported = True  # False once the server answered UNIMPLEMENTED (an older server)
        self._call: Any = None
        self._outbox: list[pb.MultiplexOp] = []
        # Closes and Resets go first in a message: a new episode waits behind no step, and the sessions it
        # replaces are freed before it starts (a server at capacity then takes it).
        self._starts: list[pb.MultiplexOp] = []
        self._waiters: dict[int, deque[_Waiter]] = {}
        self._wake: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._slots = itertools.count(1)

    async def reset(self, request: pb.ResetRequest) -> tuple[pb.ResetResponse, MultiplexTransport] | None:
        """Start an episode in a new slot; None when the server has no Multiplex (use another transport)."""
        transport = MultiplexTransport(self, next(self._slots))
        try:
            response = await transport.call("reset", request)
        except GymwireError as exc:
            if exc.code == grpc.StatusCode.UNIMPLEMENTED:
                self.supported = False
                return None
            raise
        return response, transport

    def submit(self, op: pb.MultiplexOp, timeout: float | None) -> asyncio.Future[pb.MultiplexResult]:
        future: asyncio.Future[pb.MultiplexResult] = asyncio.get_running_loop().create_future()
        self._queue(op, future, timeout)
        return future

    def post(self, op: pb.MultiplexOp) -> None:
        """Send an operation whose result does not matter (Close)."""
        if self._call is not None:
            self._queue(op, None, None)

    def _queue(self, op: pb.MultiplexOp, future: asyncio.Future | None, timeout: float | None) -> None:
        if self._call is None:
            self._open()
        deadline = time.monotonic() + (timeout or self.connection.options.timeout)
        waiters = self._waiters.get(op.slot)
        if waiters is None:
            waiters = self._waiters[op.slot] = deque()
        waiters.append((future, deadline))
        starts = op.HasField("reset") or op.HasField("close")  # a new slot's first op, or a slot's last
        (self._starts if starts else self._outbox).append(op)
        assert self._wake is not None
        self._wake.set()  # the writer runs after every coroutine ready now has queued its operation

    def _open(self) -> None:
        self._call = self.connection.open_stream("Multiplex")
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.ensure_future(self._write(self._call, self._wake)),
            asyncio.ensure_future(self._read(self._call)),
            asyncio.ensure_future(self._watch_deadlines()),
        ]

    async def _write(self, call: Any, wake: asyncio.Event) -> None:
        with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
            while call is self._call:
                await wake.wait()
                wake.clear()
                if (self._outbox or self._starts) and call is self._call:
                    ops = self._starts + self._outbox if self._starts else self._outbox
                    self._starts, self._outbox = [], []
                    for chunk in chunks(ops):
                        await call.write(pb.MultiplexRequest(ops=chunk))

    async def _read(self, call: Any) -> None:
        failure: GymwireError
        # A server at its stream limit answers the first message's operations with RESOURCE_EXHAUSTED and
        # ends the stream; operations sent on it meanwhile then fail as a broken stream. Until one
        # operation succeeds, such an end is the refusal: back-pressure, not a failed server.
        served = False
        refusal: str | None = None
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    failure = EpisodeAborted(grpc.StatusCode.UNAVAILABLE, "Multiplex stream ended by the server")
                    break
                waiters = self._waiters
                for result in response.results:
                    if not served:
                        if not result.HasField("error"):
                            served = True
                        elif status_of(result.error) == grpc.StatusCode.RESOURCE_EXHAUSTED:
                            refusal = result.error.message
                    queue = waiters.get(result.slot)
                    if not queue:
                        continue
                    future = queue.popleft()[0]
                    if not queue:
                        del waiters[result.slot]
                    if future is not None and not future.done():
                        future.set_result(result)
        except grpc.RpcError as exc:  # UNIMPLEMENTED or a refused token stay plain errors: no episode can run
            code, details = await final_status(call, (exc.code(), exc.details() or ""))
            failure = call_error(code, details, self.connection.address, "step")
        except asyncio.CancelledError:
            failure = EpisodeAborted(grpc.StatusCode.CANCELLED, "client closed", self.connection.address)
            refusal = None
        if refusal is not None and not served:
            failure = EpisodeAborted(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal, self.connection.address)
        self._fail_all(call, failure)

    def _fail_all(self, call: Any, failure: GymwireError) -> None:
        """The stream is gone and its sessions with it: every waiting episode is aborted."""
        if call is not self._call:
            return
        self._call = None
        waiters, self._waiters, self._outbox, self._starts = self._waiters, {}, [], []
        for queue in waiters.values():
            for future, _ in queue:
                if future is not None and not future.done():
                    future.set_exception(failure)
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(Exception):
            call.cancel()

    async def _watch_deadlines(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for queue in list(self._waiters.values()):
                for future, deadline in queue:
                    if deadline < now and future is not None and not future.done():
                        future.set_exception(self._timed_out())

    def _timed_out(self) -> EpisodeAborted:
        code = grpc.StatusCode.DEADLINE_EXCEEDED
        return EpisodeAborted(code, "Multiplex operation timed out", self.connection.address)

    async def aclose(self) -> None:
        call = self._call
        if call is not None:
            self._fail_all(call, EpisodeAborted(grpc.StatusCode.CANCELLED, "client closed", self.connection.address))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


class MultiplexTransport:
    """One episode's slot on its connection's Multiplex stream."""

    name = "multiplex"

    def __init__(self, multiplexer: Multiplexer, slot: int):
        self.multiplexer = multiplexer
        self.slot = slot

    async def call(self, op: str, request: Any, timeout: float | None = None) -> Any:
        if op == "close":
            # Nothing waits for a Close: ops of a slot run in order on the server, so it frees the
            # session right after the last step, and starting the next episode costs one operation.
            self.multiplexer.post(pb.MultiplexOp(slot=self.slot, close=request))
            return pb.CloseResponse(was_open=True)
        result = await self.multiplexer.submit(pb.MultiplexOp(slot=self.slot, **{op: request}), timeout)
        if result.WhichOneof("result") == "error":
            raise call_error(status_of(result.error), result.error.message, self.multiplexer.connection.address, op)
        return getattr(result, op)

    async def end(self) -> None:
        return None

"""The Multiplex stream on the server: operations of many sessions per message, results batched back.

Why: a message through gRPC's Python layer costs far more than a step of a quick environment, so
the Session stream (one message per step) spends most of its CPU in gRPC. Here one message carries
the ready turns of many episodes and one reply carries every result that is ready.

Operations run eagerly: a step of an environment that runs on the event loop completes without
suspending, so it costs no task and no loop round. An operation that does suspend (an env in a thread
pool) continues as a task and its result goes out in a later message, never holding back the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from gymwire.env_servers.sdk.dispatch import StreamSessions
from gymwire.env_servers.sdk.errors import ServiceError
from gymwire.env_servers.sdk.service import EnvService
from gymwire.v1 import environment_pb2 as pb
from gymwire.v1.wire import chunks, error


class _Resume:
    """Awaits the rest of a coroutine that was started by hand and suspended on `pending`.

    Lets an operation start eagerly (no task) and only become a task when it really waits."""

    def __init__(self, coro: Coroutine[Any, Any, Any], pending: Any):
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        pending = self.pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                self.coro.close()
                raise
            except BaseException as exc:  # cancellation and errors go into the operation
                try:
                    pending = self.coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = self.coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class MultiplexStream:
    """The sessions of one Multiplex stream (slot -> session, in `sessions`) and its outgoing results."""

    def __init__(self, ready: Callable[[], EnvService], on_error: Callable[[str], None]):
        self.sessions = StreamSessions(ready, by_id=False, what="MultiplexOp", no_session=_no_session)
        self.on_error = on_error
        self.ready: list[pb.MultiplexResult] = []  # results not sent yet
        self.wake = asyncio.Event()
        self.closing = False  # the client finished writing: the writer ends once all is sent
        self.tails: dict[int, asyncio.Task] = {}  # slot -> its suspended operation, to keep slot order
        self.tasks: set[asyncio.Task] = set()

    def submit(self, op: pb.MultiplexOp) -> None:
        coro = self._run(op)
        tail = self.tails.get(op.slot)
        if tail is not None:  # an earlier operation of this slot still runs: go after it
            self._spawn(op.slot, self._after(tail, coro))
            return
        try:
            pending = coro.send(None)
        except StopIteration as done:
            self._deliver(done.value)
            return
        self._spawn(op.slot, _Resume(coro, pending))

    def _spawn(self, slot: int, awaitable: Any) -> None:
        async def finish() -> None:
            self._deliver(await awaitable)

        task = asyncio.ensure_future(finish())
        self.tails[slot] = task
        self.tasks.add(task)

        def forget(t: asyncio.Task) -> None:
            self.tasks.discard(t)
            if self.tails.get(slot) is t:
                del self.tails[slot]

        task.add_done_callback(forget)

    @staticmethod
    async def _after(previous: asyncio.Task, coro: Coroutine[Any, Any, pb.MultiplexResult]) -> pb.MultiplexResult:
        with contextlib.suppress(BaseException):
            await previous
        return await coro

    def _deliver(self, result: pb.MultiplexResult) -> None:
        self.ready.append(result)
        self.wake.set()

    async def _run(self, op: pb.MultiplexOp) -> pb.MultiplexResult:
        slot = op.slot
        kind = op.WhichOneof("op")
        try:
            response = await self.sessions.apply(slot, kind, getattr(op, kind) if kind is not None else None)
        except ServiceError as exc:
            self.on_error(exc.code.name)
            return pb.MultiplexResult(slot=slot, error=error(exc.code, exc.message))
        return pb.MultiplexResult(slot=slot, **{kind: response})

    def take(self) -> list[pb.MultiplexResponse]:
        results, self.ready = self.ready, []
        return [pb.MultiplexResponse(results=chunk) for chunk in chunks(results)]

    def close_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        self.sessions.close_all()


def _no_session(slot: int) -> str:
    return f"slot {slot} holds no session on this stream; send a Reset into it first"


async def serve_multiplex(
    context: grpc.aio.ServicerContext, ready: Callable[[], EnvService], on_error: Callable[[str], None]
) -> None:
    """One Multiplex stream, from its first message to its end. `ready` raises UNAVAILABLE while the
    environment loads: operations then fail in-band and the stream stays open."""
    stream = MultiplexStream(ready, on_error)
    writer = asyncio.ensure_future(_write_results(stream, context))
    try:
        while True:
            request = await context.read()
            if request is grpc.aio.EOF:
                break
            if isinstance(request, DecodeError):
                on_error("INVALID_ARGUMENT")
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"malformed MultiplexRequest: {request}; text fields must be valid UTF-8",
                )
            for op in request.ops:
                stream.submit(op)
        if stream.tasks:  # the client is done writing: finish what runs, then end the stream
            await asyncio.gather(*stream.tasks, return_exceptions=True)
        stream.closing = True
        stream.wake.set()
        await writer
    finally:
        writer.cancel()
        stream.close_all()


def parse_request(data: bytes) -> pb.MultiplexRequest | DecodeError:
    """The deserializer of Multiplex requests: a message that does not parse is answered INVALID_ARGUMENT."""
    try:
        return pb.MultiplexRequest.FromString(data)
    except DecodeError as exc:
        return exc


async def _write_results(stream: MultiplexStream, context: grpc.aio.ServicerContext) -> None:
    """One writer per stream: whatever is ready when it gets to write goes out as one message."""
    while True:
        if stream.ready:
            for message in stream.take():
                await context.write(message)
        elif stream.closing:
            return
        else:
            stream.wake.clear()
            await stream.wake.wait()

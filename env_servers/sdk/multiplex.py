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

from gymwire.env_servers.sdk.errors import ServiceError
from gymwire.env_servers.sdk.service import EnvService
from gymwire.v1 import environment_pb2 as pb
from gymwire.v1.wire import chunks, error


def _parse(data: bytes) -> pb.MultiplexRequest | DecodeError:
    try:
        return pb.MultiplexRequest.FromString(data)
    except DecodeError as exc:
        return exc


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
    """The sessions of one Multiplex stream (slot -> session id) and its outgoing results."""

    def __init__(self, service: EnvService, on_error: Callable[[str], None]):
        self.service = service
        self.on_error = on_error
        self.slots: dict[int, str] = {}
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
        try:
            return await self._apply(slot, op)
        except ServiceError as exc:
            self.on_error(exc.code.name)
            return pb.MultiplexResult(slot=slot, error=error(exc.code, exc.message))

    async def _apply(self, slot: int, op: pb.MultiplexOp) -> pb.MultiplexResult:
        kind = op.WhichOneof("op")
        service = self.service
        if kind == "step":
            request = op.step
            request.session_id = self._session(slot)
            return pb.MultiplexResult(slot=slot, step=pb.StepResponse(observation=await service.step(request)))
        if kind == "reset":
            previous = self.slots.pop(slot, None)
            if previous is not None:
                service.close(pb.CloseRequest(session_id=previous))
            session, response = await service.reset(op.reset)
            self.slots[slot] = session.id
            return pb.MultiplexResult(slot=slot, reset=response)
        if kind == "close":
            session_id = self.slots.pop(slot, None)
            was_open = session_id is not None and service.close(pb.CloseRequest(session_id=session_id)).was_open
            return pb.MultiplexResult(slot=slot, close=pb.CloseResponse(was_open=was_open))
        if kind == "valid_actions":
            request_va = pb.ValidActionsRequest(session_id=self._session(slot))
            return pb.MultiplexResult(slot=slot, valid_actions=await service.valid_actions(request_va))
        if kind == "expert_action":
            request_ex = pb.ExpertActionRequest(session_id=self._session(slot))
            return pb.MultiplexResult(slot=slot, expert_action=await service.expert_action(request_ex))
        raise ServiceError.invalid_argument("MultiplexOp has no operation set")

    def _session(self, slot: int) -> str:
        session_id = self.slots.get(slot)
        if session_id is None:
            raise ServiceError.not_found(f"slot {slot} holds no session on this stream; send a Reset into it first")
        return session_id

    def take(self) -> list[pb.MultiplexResponse]:
        results, self.ready = self.ready, []
        return [pb.MultiplexResponse(results=chunk) for chunk in chunks(results)]

    def close_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for session_id in self.slots.values():
            self.service.close(pb.CloseRequest(session_id=session_id))
        self.slots.clear()


def multiplex_method(
    ready: Callable[[], EnvService], on_error: Callable[[str], None], service_now: Callable[[], EnvService | None]
) -> grpc.RpcMethodHandler:
    """The Multiplex handler. `ready` raises UNAVAILABLE while the env loads; `service_now` is for cleanup."""

    async def handle(request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        try:
            service = ready()
        except ServiceError as exc:
            await context.abort(exc.code, exc.message)
            return
        stream = MultiplexStream(service, on_error)
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
            if service_now() is not None:
                stream.close_all()

    return grpc.stream_stream_rpc_method_handler(
        handle, request_deserializer=_parse, response_serializer=pb.MultiplexResponse.SerializeToString
    )


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

"""The one operation table of the wire on the server.

Unary calls, the Session stream and the Multiplex stream differ only in how requests arrive and how
replies leave; what an operation does is looked up here (`CALLS`), so all three answer with the same
codes and messages. A stream owns the sessions it starts, one per slot (`StreamSessions`; a Session
stream is one slot), and closes them when it ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gymwire.env_servers.sdk.errors import ServiceError
from gymwire.env_servers.sdk.service import EnvService
from gymwire.v1 import environment_pb2 as pb


async def _get_info(service: EnvService, request: pb.GetInfoRequest) -> pb.GetInfoResponse:
    return service.get_info()


async def _list_tasks(service: EnvService, request: pb.ListTasksRequest) -> pb.ListTasksResponse:
    return service.list_tasks(request)


async def _reset(service: EnvService, request: pb.ResetRequest) -> pb.ResetResponse:
    return (await service.reset(request))[1]


async def _step(service: EnvService, request: pb.StepRequest) -> pb.StepResponse:
    return pb.StepResponse(observation=await service.step(request))


async def _valid_actions(service: EnvService, request: pb.ValidActionsRequest) -> pb.ValidActionsResponse:
    return await service.valid_actions(request)


async def _expert_action(service: EnvService, request: pb.ExpertActionRequest) -> pb.ExpertActionResponse:
    return await service.expert_action(request)


async def _close(service: EnvService, request: pb.CloseRequest) -> pb.CloseResponse:
    return service.close(request)


Call = Callable[[EnvService, Any], Awaitable[Any]]
# Episode operations by their name in gymwire.v1.wire.OPERATIONS: the request message in, the response out.
CALLS: dict[str, Call] = {
    "reset": _reset,
    "step": _step,
    "valid_actions": _valid_actions,
    "expert_action": _expert_action,
    "close": _close,
}
# Calls that only the unary RPCs carry, by method name: (request class, response class, call).
UNARY_ONLY: dict[str, tuple[type, type, Call]] = {
    "GetInfo": (pb.GetInfoRequest, pb.GetInfoResponse, _get_info),
    "ListTasks": (pb.ListTasksRequest, pb.ListTasksResponse, _list_tasks),
}


class StreamSessions:
    """The sessions of one stream, by slot. A Reset into a slot replaces its session, a Close empties it,
    other operations act on it. `by_id`: a request that names a session id acts on that session instead
    (the Session stream's contract); a Multiplex stream ignores ids. `ready` raises UNAVAILABLE while
    the environment loads, so a stream opened then answers in-band and works once it has loaded."""

    def __init__(self, ready: Callable[[], EnvService], *, by_id: bool, what: str, no_session: Callable[[int], str]):
        self._ready = ready
        self.service: EnvService | None = None
        self.by_id = by_id
        self.what = what  # the message that carries an operation, for errors: "SessionRequest", "MultiplexOp"
        self.no_session = no_session  # the NOT_FOUND message for an operation on an empty slot
        self.slots: dict[int, str] = {}

    async def apply(self, slot: int, kind: str | None, request: Any) -> Any:
        """Run operation `kind` (None: no operation was set) in `slot`; its response, or ServiceError."""
        service = self.service or self._resolve()
        call = CALLS.get(kind) if kind is not None else None
        if call is None:
            raise ServiceError.invalid_argument(f"{self.what} has no operation set")
        if call is _reset:
            previous = self.slots.pop(slot, None)
            if previous is not None:
                service.close(pb.CloseRequest(session_id=previous))
            response = await call(service, request)
            self.slots[slot] = response.session_id
            return response
        owned = self.slots.get(slot)
        if not (self.by_id and request.session_id):
            if owned is None:
                if call is _close and not self.by_id:
                    return pb.CloseResponse(was_open=False)
                raise ServiceError.not_found(self.no_session(slot))
            request.session_id = owned
        response = await call(service, request)
        if call is _close and owned is not None and request.session_id == owned:
            del self.slots[slot]
        return response

    def _resolve(self) -> EnvService:
        self.service = self._ready()
        return self.service

    def close_all(self) -> None:
        if self.service is not None:
            for session_id in self.slots.values():
                self.service.close(pb.CloseRequest(session_id=session_id))
        self.slots.clear()

"""What both ends of gymwire.v1 share beyond the generated messages: the episode operations and their
names on every transport, status numbers, how results are cut into messages, and how a stream's end
is read.

The client and the server SDK both import this module and neither imports the other: it depends on
grpc and the generated stubs only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc

from gymwire.v1 import environment_pb2 as pb


@dataclass(frozen=True)
class Operation:
    """One episode operation. `name` is its field in SessionRequest/SessionResponse and in
    MultiplexOp/MultiplexResult; `method` is its unary RPC."""

    name: str
    method: str
    request: type
    response: type


# The operations of an episode, the same on the unary calls, the Session stream and the Multiplex stream.
OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("reset", "Reset", pb.ResetRequest, pb.ResetResponse),
        Operation("step", "Step", pb.StepRequest, pb.StepResponse),
        Operation("valid_actions", "ValidActions", pb.ValidActionsRequest, pb.ValidActionsResponse),
        Operation("expert_action", "ExpertAction", pb.ExpertActionRequest, pb.ExpertActionResponse),
        Operation("close", "Close", pb.CloseRequest, pb.CloseResponse),
    )
}

STATUS_NUMBER: dict[grpc.StatusCode, int] = {code: code.value[0] for code in grpc.StatusCode}
STATUS_BY_NUMBER: dict[int, grpc.StatusCode] = {number: code for code, number in STATUS_NUMBER.items()}


def error(code: grpc.StatusCode, message: str) -> pb.Error:
    """An in-band error (SessionResponse.error, MultiplexResult.error): the status a unary call would end with."""
    return pb.Error(code=STATUS_NUMBER[code], message=message)


def status_of(err: pb.Error) -> grpc.StatusCode:
    """The status of an in-band error; a number this grpc does not know reads as UNKNOWN."""
    return STATUS_BY_NUMBER.get(err.code, grpc.StatusCode.UNKNOWN)


# Bytes per Multiplex message at most: far below gRPC's default 4 MiB receive limit, however many
# sessions a stream carries and however long their turns and observations are.
MESSAGE_BUDGET = 1 << 20


def chunks(items: list[Any], budget: int = MESSAGE_BUDGET) -> list[list[Any]]:
    """Consecutive runs of `items` (protobuf messages) of at most `budget` serialized bytes each; an
    item larger than the budget goes alone."""
    if len(items) == 1:  # one item goes alone whatever its size: no need to measure it
        return [items]
    runs: list[list[Any]] = [[]]
    size = 0
    for item in items:
        n = item.ByteSize() + 8  # the field's tag and length
        if size + n > budget and runs[-1]:
            runs.append([])
            size = 0
        runs[-1].append(item)
        size += n
    return runs


async def final_status(call: Any, fallback: tuple[grpc.StatusCode, str]) -> tuple[grpc.StatusCode, str]:
    """Why a stream ended: its own status. A write or read on a stream that has just ended fails with a
    generic error first, while the status says why (a refused token, a full server, a dead one).
    `fallback` when the status cannot be read in time or is OK (the server ended the stream early)."""
    try:
        code = await asyncio.wait_for(call.code(), 2.0)
        details = await call.details() or ""
    except (TimeoutError, asyncio.InvalidStateError, grpc.RpcError):
        return fallback
    if code == grpc.StatusCode.OK:
        return fallback
    return code, details

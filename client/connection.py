"""Channel set-up shared by the sync and asyncio clients: retries, keepalive, TLS, auth, errors."""

from __future__ import annotations

import json
from dataclasses import dataclass

import grpc

SERVICE = "gymwire.v1.EnvironmentService"

# gRPC's own transparent retries for calls that are safe to repeat: Step is safe because the
# client always sends step_index (the server returns the stored reply of a duplicate); Reset is
# retried only on UNAVAILABLE (the request did not reach a ready server; a stray session expires).
_RETRY = {
    "maxAttempts": 5,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": SERVICE}],
                "retryPolicy": _RETRY,
            }
        ],
    }
)

# Failures that mean the server or the network failed, not the agent: the episode is aborted. A full
# server (RESOURCE_EXHAUSTED) is back-pressure: the episode goes elsewhere or waits, it is never scored.
ABORTING_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
# A Reset that fails this way never started an episode; NOT_FOUND there is no lost session.
RESET_ABORTING_CODES = ABORTING_CODES - {grpc.StatusCode.NOT_FOUND}
# What gRPC reports when a connection breaks under a call (e.g. a write to a stream of a killed server):
# the server said nothing, so it must not read as a bug in the environment.
_BROKEN_CONNECTION_DETAILS = frozenset({"", "Internal error from Core"})


class GymwireError(Exception):
    """A call failed with a status the caller must fix (bad task id, step after the end...)."""

    def __init__(self, code: grpc.StatusCode, message: str, address: str = ""):
        super().__init__(f"{code.name}: {message}" + (f" ({address})" if address else ""))
        self.code = code
        self.message = message
        self.address = address


class EpisodeAborted(GymwireError):
    """The episode cannot continue for reasons outside the agent (server died, session lost).

    Never score it as a failed task: retry it elsewhere or drop it, and count it.
    """


def call_error(code: grpc.StatusCode, details: str, address: str, op: str | None) -> GymwireError:
    """The error of a failed call; `op` names the episode operation ("reset", "step", ...), None for others."""
    if code == grpc.StatusCode.INTERNAL and details in _BROKEN_CONNECTION_DETAILS:
        code, details = grpc.StatusCode.UNAVAILABLE, f"connection to the server broke ({details or 'no status'})"
    aborting = RESET_ABORTING_CODES if op == "reset" else ABORTING_CODES
    cls = EpisodeAborted if op is not None and code in aborting else GymwireError
    return cls(code, details, address)


def error_from_rpc(exc: grpc.RpcError, address: str, op: str | None) -> GymwireError:
    return call_error(exc.code(), exc.details() or "", address, op)


@dataclass(frozen=True)
class ChannelOptions:
    token: str | None = None  # bearer token, sent as "authorization: Bearer <token>"
    tls: bool = False
    root_certificates: bytes | None = None  # PEM; None uses the system's roots when tls is on
    timeout: float = 60.0  # deadline of each call, seconds
    max_message_bytes: int = 4 * 1024 * 1024

    def grpc_options(self) -> list[tuple[str, object]]:
        return [
            ("grpc.service_config", SERVICE_CONFIG),
            # Each client gets its own connection: gRPC otherwise shares one between channels to the
            # same address, and every session would land on one worker of a multi-process server.
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
        ]

    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        return (("authorization", f"Bearer {self.token}"),) if self.token else None

    def credentials(self) -> grpc.ChannelCredentials | None:
        return grpc.ssl_channel_credentials(self.root_certificates) if self.tls else None

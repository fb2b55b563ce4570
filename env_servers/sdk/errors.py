"""The protocol's failures as one exception type, mapped to gRPC status codes at the edge."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """A failure the client must see as a gRPC status (unary) or an in-band Error (stream)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def invalid_argument(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.INVALID_ARGUMENT, message)

    @classmethod
    def not_found(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.NOT_FOUND, message)

    @classmethod
    def failed_precondition(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.FAILED_PRECONDITION, message)

    @classmethod
    def resource_exhausted(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.RESOURCE_EXHAUSTED, message)

    @classmethod
    def unavailable(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.UNAVAILABLE, message)

    @classmethod
    def internal(cls, message: str) -> ServiceError:
        return cls(grpc.StatusCode.INTERNAL, message)


ECHO_LIMIT = 120  # characters of client input an error message repeats


def echo(value: str, limit: int = ECHO_LIMIT) -> str:
    """`value` quoted for an error message, cut short: messages travel as metadata, whose size is capped,
    so repeating a huge id or token would turn a clear error into a transport failure."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"

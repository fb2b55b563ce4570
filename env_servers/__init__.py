"""Environment servers: the SDK, the conformance suite and one sub-package per environment."""

from gymwire.env_servers import grpc_io  # noqa: F401  (before anything imports grpc)

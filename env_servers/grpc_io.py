"""The gRPC I/O path of gymwire's servers and clients, chosen before gRPC is first imported.

gRPC's EventEngine endpoints (its default since 1.6x) hand every read and write of a connection to
threads of their own, and the event loop then waits on yet another thread for each completion. The
classic endpoints do the socket I/O on the thread that polls for completions: on grpcio 1.85 a
Multiplex step costs ~30% less CPU per message on each side and one session steps ~15-20% faster
(bench.peers, 2 cores). gRPC reads GRPC_EXPERIMENTS once, when it is first imported, so this runs
on import, from the `__init__` of `gymwire.env_servers` and of `gymwire.client`; an explicit
GRPC_EXPERIMENTS (even an empty one) is left alone.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, version

CLASSIC_ENDPOINTS = "-event_engine_client,-event_engine_listener"
# Measured on these versions; a newer gRPC may have dropped the switches (it would log an error).
TESTED_VERSIONS = ((1, 70), (1, 85))


def prefer_classic_endpoints() -> bool:
    """Turn gRPC's EventEngine endpoints off for this process and its children; False where it cannot
    (gRPC already imported, GRPC_EXPERIMENTS set, an untested gRPC version)."""
    if "grpc" in sys.modules or "GRPC_EXPERIMENTS" in os.environ:
        return False
    try:
        major_minor = tuple(int(part) for part in version("grpcio").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    if not TESTED_VERSIONS[0] <= major_minor <= TESTED_VERSIONS[1]:
        return False
    os.environ["GRPC_EXPERIMENTS"] = CLASSIC_ENDPOINTS
    return True


prefer_classic_endpoints()

"""Container health check: exit 0 when the gRPC server says SERVING (grpc.health.v1), 1 otherwise.

Independent of gymwire on purpose: it needs only grpcio and grpcio-health-checking, so it checks any
gymwire.v1 server (or any gRPC server with the standard health service) and no probe binary has to
be downloaded. A gymwire server answers NOT_SERVING until its data is loaded and while it drains.

    python healthcheck.py [ADDRESS] [SERVICE]     default 127.0.0.1:$GYMWIRE_PORT, service "" (whole server)
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else f"127.0.0.1:{os.environ.get('GYMWIRE_PORT', '50051')}"
    service = argv[2] if len(argv) > 2 else ""
    timeout = float(os.environ.get("GYMWIRE_HEALTH_TIMEOUT", "3"))
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            print(f"{address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

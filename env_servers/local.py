"""Start environment servers as local child processes (`gymwire serve ...`) and wait until SERVING.

Used by the main job, the benchmarks and the tests; each server is a real process on a loopback
port, exactly what a user starts by hand.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_serving(address: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    """Block until the server's health service says SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"server for {address} exited with status {proc.returncode}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"{address} was not SERVING within {timeout:.0f} s")


class LocalServer:
    """One `gymwire serve ENV` child process; stderr goes to `log_path` (or is discarded)."""

    def __init__(
        self,
        env: str,
        *args: str,
        port: int | None = None,
        log_path: Path | None = None,
        env_vars: dict[str, str] | None = None,
    ):
        self.env = env
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gymwire.cli.main", "serve", env, "--port", str(self.port), *args],
            stdout=log,
            stderr=log,
            env={**os.environ, **(env_vars or {})},
        )

    def wait(self, timeout: float = 120.0) -> LocalServer:
        try:
            wait_serving(self.address, timeout, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            hint = f"; see {self.log_path}" if self.log_path else ""
            raise RuntimeError(f"{self.env} server did not start: {exc}{hint}") from None
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.returncode

    def __enter__(self) -> LocalServer:
        return self.wait()

    def __exit__(self, *exc) -> None:
        self.stop()

"""Shared fixtures: real servers on 127.0.0.1 ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.sdk.background import BackgroundServer

os.environ.setdefault("GYMWIRE_LOG_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def guess_server() -> Iterator[BackgroundServer]:
    with BackgroundServer(GuessEnvironment) as server:
        yield server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(address: str, timeout: float = 60.0) -> None:
    from gymwire.client import EnvClient

    deadline = time.monotonic() + timeout
    client = EnvClient(address)
    try:
        while time.monotonic() < deadline:
            if client.health(timeout=1.0):
                return
            time.sleep(0.1)
    finally:
        client.close()
    raise TimeoutError(f"{address} not SERVING within {timeout} s")


def gymwire_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gymwire.cli.main", *args], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 300), **kwargs)


class ServeProcess:
    """`gymwire serve ...` as a real child process."""

    def __init__(self, *args: str, port: int | None = None, env: dict[str, str] | None = None):
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "gymwire.cli.main", "serve", *args, "--port",
                                      str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})

    def __enter__(self) -> ServeProcess:
        try:
            wait_healthy(self.address)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"server failed: {self.proc.stderr.read()}") from None
        return self

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout)

    def __exit__(self, *exc) -> None:
        self.stop()

"""Shared fixtures: real servers on 127.0.0.1 ports."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from gymwire.env_servers.local import LocalServer
from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.sdk.background import BackgroundServer

os.environ.setdefault("GYMWIRE_LOG_LEVEL", "WARNING")


@pytest.fixture(scope="session")
def guess_server() -> Iterator[BackgroundServer]:
    with BackgroundServer(GuessEnvironment) as server:
        yield server


def gymwire_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gymwire.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 300),
        **kwargs,
    )


def kill_when(ready: Callable[[], bool], server: LocalServer, timeout: float = 300.0) -> threading.Thread:
    """Kill -9 `server` from a watcher thread as soon as `ready()` holds (e.g. episodes are mid-flight)."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                server.proc.kill()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread

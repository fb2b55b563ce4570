"""Shared fixtures: real servers on 127.0.0.1 ports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

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

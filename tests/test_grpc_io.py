"""gymwire picks gRPC's classic endpoints when it is imported before grpc, and leaves a user's choice alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gymwire.env_servers.grpc_io import CLASSIC_ENDPOINTS


def _experiments_after(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"} | env
    script = f"{code}\nimport os\nprint(os.environ.get('GRPC_EXPERIMENTS', '<unset>'))"
    out = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("package", ["gymwire.client", "gymwire.env_servers.sdk.server", "gymwire.cli.main"])
def test_importing_gymwire_first_selects_the_classic_endpoints(package: str) -> None:
    assert _experiments_after(f"import {package}") == CLASSIC_ENDPOINTS


def test_grpc_imported_first_or_an_explicit_setting_is_left_alone() -> None:
    assert _experiments_after("import grpc\nimport gymwire.client") == "<unset>"
    assert _experiments_after("import gymwire.client", GRPC_EXPERIMENTS="") == ""

"""The `gymwire` command as a user runs it: real processes, real ports."""

from __future__ import annotations

import json

from gymwire.env_servers.local import LocalServer
from tests.conftest import gymwire_cli


def test_serve_then_check_info_tasks_play():
    with LocalServer("guess") as server:
        check = gymwire_cli("check", server.address)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "0 failed" in check.stdout
        info = json.loads(gymwire_cli("info", server.address).stdout)
        assert info["name"] == "guess" and info["features"]["provides_expert"]
        tasks = gymwire_cli("tasks", server.address, "--split", "test", "--limit", "3").stdout.splitlines()
        assert len(tasks) == 3 and tasks[0].startswith("test-")
        play = gymwire_cli("play", server.address, "--task", "test-easy-0", input="guess 20\nguess 5\n")
        assert play.returncode == 0
        assert "out of range" in play.stdout and "[invalid action]" in play.stdout


def test_check_fails_without_server():
    result = gymwire_cli("check", "127.0.0.1:9", "--timeout", "1")
    assert result.returncode == 1 and "FAIL" in result.stdout


def test_unknown_environment_is_a_clear_error():
    result = gymwire_cli("serve", "no-such-env", "--port", "0")
    assert result.returncode == 2
    assert "unknown environment 'no-such-env'" in result.stderr and "guess" in result.stderr


def test_envs_lists_registered():
    assert "guess" in gymwire_cli("envs").stdout

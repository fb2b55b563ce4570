"""The `gymwire` command as a user runs it: real processes, real ports."""

from __future__ import annotations

import json

import pytest

from gymwire.cli.commands import server_config
from gymwire.cli.main import build_parser
from gymwire.env_servers.local import LocalServer
from gymwire.env_servers.sdk.server import ServerConfig
from gymwire.trainer.masks import PLAIN_ON
from gymwire.trainer.model import default_model_dir
from gymwire.trainer.records import read_trajectories
from tests.conftest import gymwire_cli
from tests.test_policy import needs_vllm


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


def test_serve_options_default_to_the_servers_own_settings(monkeypatch):
    monkeypatch.delenv("GYMWIRE_HOST", raising=False)
    monkeypatch.delenv("GYMWIRE_AUTH_TOKEN", raising=False)
    assert server_config(build_parser().parse_args(["serve", "guess"])) == ServerConfig()
    given = ["serve", "guess", "--max-sessions", "8", "--session-ttl", "5", "--max-streams", "3", "--grace", "1"]
    config = server_config(build_parser().parse_args(given))
    assert (config.limits.max_sessions, config.limits.session_ttl_seconds) == (8, 5.0)
    assert (config.max_streams, config.grace_seconds, config.port) == (3, 1.0, ServerConfig().port)


@pytest.mark.slow
@needs_vllm
def test_eval_with_an_openai_server(vllm_server, tmp_path):
    """`gymwire eval --policy openai:URL#MODEL` against vLLM's OpenAI server and two env servers, then
    `gymwire masks` on what it stored."""
    out = tmp_path / "eval"
    with LocalServer("guess") as guess, LocalServer("textcraft") as textcraft:
        result = gymwire_cli(
            "eval",
            "--policy",
            f"openai:{vllm_server}/v1#{default_model_dir()}",
            "--env",
            guess.address,
            "--env",
            textcraft.address,
            "-k",
            "1",
            "--tasks-per-env",
            "1",
            "--max-turns",
            "2",
            "--max-new-tokens",
            "16",
            "--out",
            str(out),
            "--keep-tokens",
            timeout=600,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {(r["env"], r["difficulty"]) for r in rows} == {
        (e, d) for e in ("guess", "textcraft") for d in ("easy", "hard")
    }
    assert all(r["episodes"] == 1 and r["aborted"] == 0 for r in rows)
    episodes = [t for _, t in read_trajectories(out / "trajectories.jsonl")]
    assert len(episodes) == 4
    for t in episodes:
        assert 1 <= t.turns == len(t.steps) <= 2 and sum(t.loss_mask) == t.generated_tokens > 0
        assert sum(s.generated_tokens for s in t.steps) == t.generated_tokens
    shown = gymwire_cli("masks", str(out / "trajectories.jsonl"), "--episode", "3", "--plain")
    assert shown.returncode == 0, shown.stderr
    assert "turn 0: action " in shown.stdout and PLAIN_ON in shown.stdout

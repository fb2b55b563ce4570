"""bench/peers.py compares like with like: the gymwire and OpenEnv echo environments answer identically."""

from __future__ import annotations

import pytest

from bench.echo_env import EPISODE_STEPS, RESET_CHARS, STEP_CHARS, TASK_ID, EchoEnvironment
from bench.peers import Point, Result, add_ratios, check_targets, plan

openenv_echo = pytest.importorskip("bench.openenv_echo", reason="openenv-core (the bench extra) is not installed")


@pytest.mark.parametrize("openenv_env", [openenv_echo.SyncEcho, openenv_echo.AsyncEcho])
def test_both_sides_serve_the_same_environment(openenv_env) -> None:
    env = EchoEnvironment()
    episode = env.start(env.catalogue().get(TASK_ID))
    peer = openenv_env()
    first = episode.reset()
    assert first == peer.reset().text and len(first) == RESET_CHARS
    for turn in range(1, EPISODE_STEPS + 1):
        action = f"Action: say {turn}"
        ours, theirs = episode.step(action), peer.step(openenv_echo.EchoAction(message=action))
        assert ours.observation == theirs.text and len(ours.observation) == STEP_CHARS
        assert action in ours.observation
        assert ours.terminated == theirs.done == (turn == EPISODE_STEPS)


def test_ratios_and_targets_compare_within_one_rep_and_session_count() -> None:
    points = plan([1, 1024], ["gymwire-multiplex", "openenv-best"], two_clients=True, workers=True)
    assert Point("gymwire-multiplex", 1024, clients=2) in points
    assert Point("gymwire-multiplex", 1024, workers=2) in points
    best = Result("openenv-best", 1024, 1, 1, rep=1, steps_per_s=1000.0, p99_ms=100.0, p50_ms=50.0)
    ours = Result("gymwire-multiplex", 1024, 1, 1, rep=1, steps_per_s=2500.0, p99_ms=40.0, p50_ms=20.0)
    ours.server_us_per_step, ours.client_us_per_step, ours.start_p50_ms = 50.0, 70.0, 10.0
    other_rep = Result("openenv-best", 1024, 1, 1, rep=2, steps_per_s=10.0, p99_ms=1.0)
    add_ratios([best, ours, other_rep])
    assert (ours.x_best_steps, ours.p99_vs_best) == (2.5, 0.4)
    met = {check["target"].split(": ", 1)[1]: check["met"] for check in check_targets([best, ours])}
    assert met == {
        "steps/s >= 2x openenv-best": True,
        "p99 <= 0.5x openenv-best's": True,
        "server CPU <= 60 us/step": True,
        "client CPU <= 60 us/step": False,
        "episode start p50 <= step p50": True,
    }

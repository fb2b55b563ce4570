"""The fault barrage, small: hostile requests, filter and session abuse, kill -9 and SIGTERM mid-rollout, a
NaN reward. Real servers on loopback; the full-size run is `python -m bench.faults`."""

from __future__ import annotations

import asyncio

from bench import faults


def test_barrage_gets_only_the_codes_the_contract_names():
    row = asyncio.run(faults.barrage(1000))
    assert row["crashes"] == 0
    assert row["wrong_codes"] == 0, row["examples"]
    assert row["metrics_without_token"] == "401"


def test_filter_and_session_abuse_leaves_memory_flat():
    row = asyncio.run(faults.leak(filters=400, sessions=400))  # 40 MB of filters
    assert row["crashes"] == 0
    assert row["growth_mb"] < 15, row


def test_kill_9_mid_rollout_aborts_episodes_never_fails_them():
    row = asyncio.run(faults.kill(40))
    assert row["errors"] == 0, row["examples"]
    assert row["scored"] + row["aborted"] == 40
    assert set(row["abort_codes"]) <= {"UNAVAILABLE"}, row  # a dead server never reads as an env bug
    assert row["crashes"] == 0


def test_sigterm_mid_rollout_lets_open_episodes_finish():
    row = asyncio.run(faults.drain(40))
    assert row["errors"] == 0 and row["retried"] == 0 and row["aborted"] == 0, row  # not one abort
    assert row["scored"] == 40 and row["exit_code"] == 0


def test_more_episodes_than_capacity_is_back_pressure_not_errors():
    row = asyncio.run(faults.full(60, 10))
    assert row["errors"] == 0, row["examples"]
    assert row["scored"] + row["aborted"] == 60 and row["scored"] > 0
    assert set(row["abort_codes"]) <= {"RESOURCE_EXHAUSTED"} and row["crashes"] == 0


def test_a_nan_reward_is_never_scored():
    row = asyncio.run(faults.nan(10))
    assert row["scored"] == 0 and row["non_finite_rewards_received"] == 0
    assert row["abort_codes"] == {"INTERNAL": 10} and row["crashes"] == 0

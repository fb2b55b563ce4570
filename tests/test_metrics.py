"""Evaluation statistics, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest

from gymwire.trainer.metrics import mean_ci, pass_at_k, summarize, t_quantile
from gymwire.trainer.types import Trajectory


def test_pass_at_k_by_hand():
    assert pass_at_k(8, 0, 1) == 0.0
    assert pass_at_k(8, 8, 8) == 1.0
    assert pass_at_k(8, 2, 1) == pytest.approx(2 / 8)
    # n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(5, 3, 3) == 1.0  # fewer than k failures: every draw has a success
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_t_quantile_matches_the_table():
    # Two-sided 95% critical values of Student's t (any statistics table).
    for df, t in ((1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (28, 2.048), (120, 1.980)):
        assert t_quantile(0.95, df) == pytest.approx(t, abs=1e-3)
    assert t_quantile(0.99, 10) == pytest.approx(3.169, abs=1e-3)


def test_mean_ci_by_hand():
    """Four tasks: the interval uses t with 3 degrees of freedom, not the normal 1.96."""
    mean, half = mean_ci([0.0, 1.0, 1.0, 0.0])
    assert mean == 0.5 and half == pytest.approx(3.182446 * math.sqrt((4 * 0.25) / 3 / 4), rel=1e-5)
    assert mean_ci([0.7]) == (0.7, 0.0) and mean_ci([]) == (0.0, 0.0)


def _t(task, success, env="e", turns=2, tokens=10, invalid=0, aborted=False, **info):
    return Trajectory(
        env=env,
        task_id=task,
        group_id=task,
        success=success,
        reward=float(success),
        turns=turns,
        generated_tokens=tokens,
        invalid_actions=invalid,
        aborted=aborted,
        info={"split": "test", "difficulty": info.get("difficulty", "easy"), "category": ""},
    )


def test_summarize_by_hand():
    trajectories = [
        _t("a", True),
        _t("a", False),
        _t("a", False),
        _t("a", True),  # task a: 2/4
        _t("b", False),
        _t("b", False),
        _t("b", False),
        _t("b", False),  # task b: 0/4
        _t("b", False, aborted=True),  # never scored
        _t("c", True, difficulty="hard", turns=4, tokens=30, invalid=1),
        _t("c", True, difficulty="hard", turns=4),
    ]
    rows = {r.difficulty: r for r in summarize(trajectories, k=2, by=("env", "difficulty"))}
    easy = rows["easy"]
    assert easy.tasks == 2 and easy.episodes == 8 and easy.aborted == 1
    assert easy.avg_at_k == pytest.approx((0.5 + 0.0) / 2)
    # task a: pass@2 with n=4, c=2 = 1 - C(2,2)/C(4,2) = 5/6; task b: 0
    assert easy.pass_at_k == pytest.approx((5 / 6) / 2)
    hard = rows["hard"]
    assert hard.avg_at_k == 1.0 and hard.mean_turns == 4 and hard.mean_tokens == 20
    assert hard.invalid_rate == pytest.approx(1 / 8)

"""Evaluation statistics, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest

from gymwire.trainer.metrics import mean_ci, paired_gain, pass_at_k, summarize, t_quantile
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


def test_paired_gain_by_hand():
    before = [_t("a", False), _t("a", False), _t("b", True), _t("b", False), _t("c", False), _t("c", False)]
    after = [_t("a", True), _t("a", False), _t("b", True), _t("b", True), _t("c", True), _t("c", True)]
    after.append(_t("d", True))  # only in one evaluation: not paired
    after.append(_t("a", False, aborted=True))  # never scored
    result = paired_gain(before, after)
    # per-task changes: a 0 -> 1/2, b 1/2 -> 1, c 0 -> 1: +0.5, +0.5, +1.0
    diffs = [0.5, 0.5, 1.0]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    assert result.tasks == 3 and result.k == 2
    assert result.gain == pytest.approx(mean)
    assert result.half_width == pytest.approx(t_quantile(0.95, 2) * sd / math.sqrt(3))
    assert result.low == pytest.approx(mean - result.half_width)
    assert not result.significant  # 3 tasks: t(2) = 4.30 makes the interval wider than the gain
    many = paired_gain(before * 10, after * 10)  # same tasks: pairing is by task, not by repetition
    assert many.tasks == 3 and many.gain == pytest.approx(mean)


def test_paired_gain_significance():
    before = [_t(f"t{i}", False) for i in range(10)]
    after = [_t(f"t{i}", i < 8) for i in range(10)]
    result = paired_gain(before, after)
    assert result.gain == pytest.approx(0.8) and result.significant
    assert not paired_gain(before, before).significant

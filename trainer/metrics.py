"""Evaluation statistics: avg@k, unbiased pass@k with confidence intervals (Student's t, tasks as the unit),
turns, tokens, invalid rate."""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from gymwire.trainer.types import Trajectory


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c successes (Chen et al., 2021): 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _t_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer df (Abramowitz & Stegun 26.7.3-4: finite sums, no SciPy)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 0:
        term = total = 1.0
        for j in range(2, df, 2):
            term *= c2 * (j - 1) / j
            total += term
        return math.sin(theta) * total
    if df == 1:
        return 2 * theta / math.pi
    term = total = 1.0
    for j in range(3, df, 2):
        term *= c2 * (j - 1) / j
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)


@functools.cache
def t_quantile(confidence: float, df: int) -> float:
    """The t with P(|T| <= t) = confidence: the multiplier of a two-sided Student's t interval."""
    low, high = 0.0, 1.0
    while _t_two_sided(high, df) < confidence:
        high *= 2
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_two_sided(mid, df) < confidence else (low, mid)
    return (low + high) / 2


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student's t interval over independent units (tasks): with the
    few tasks an evaluation has, the normal approximation's 1.96 would make the interval too narrow."""
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, t_quantile(confidence, len(values) - 1) * math.sqrt(var / len(values))


@dataclass
class EvalRow:
    env: str
    split: str
    difficulty: str
    category: str
    tasks: int
    episodes: int
    k: int
    avg_at_k: float  # success averaged over all samples of all tasks
    avg_ci: float  # 95% half-width (Student's t), tasks as the independent unit
    pass_at_k: float
    pass_ci: float
    mean_reward: float
    mean_turns: float
    mean_tokens: float
    invalid_rate: float  # invalid actions per turn
    aborted: int  # episodes lost to infrastructure (excluded from every rate)

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(trajectories: Iterable[Trajectory], k: int, by: Sequence[str] = ("env",)) -> list[EvalRow]:
    """One row per group of `by` keys (any of env, split, difficulty, category); aborted episodes are
    counted but never scored."""
    groups: dict[tuple, list[Trajectory]] = defaultdict(list)
    for t in trajectories:
        key = tuple(t.env if field == "env" else t.info.get(field, "") for field in by)
        groups[key].append(t)
    rows = []
    for key, items in sorted(groups.items()):
        labels = dict(zip(by, key, strict=True))
        done = [t for t in items if not t.aborted]
        per_task: dict[str, list[Trajectory]] = defaultdict(list)
        for t in done:
            per_task[f"{t.env}/{t.task_id}"].append(t)
        task_avg = [sum(t.success for t in ts) / len(ts) for ts in per_task.values()]
        task_pass = [pass_at_k(len(ts), sum(t.success for t in ts), min(k, len(ts))) for ts in per_task.values()]
        avg, avg_ci = mean_ci(task_avg)
        pk, pk_ci = mean_ci(task_pass)
        turns = sum(t.turns for t in done)
        rows.append(
            EvalRow(
                env=labels.get("env", "all"),
                split=labels.get("split", ""),
                difficulty=labels.get("difficulty", ""),
                category=labels.get("category", ""),
                tasks=len(per_task),
                episodes=len(done),
                k=k,
                avg_at_k=avg,
                avg_ci=avg_ci,
                pass_at_k=pk,
                pass_ci=pk_ci,
                mean_reward=sum(t.reward for t in done) / max(len(done), 1),
                mean_turns=turns / max(len(done), 1),
                mean_tokens=sum(t.generated_tokens for t in done) / max(len(done), 1),
                invalid_rate=sum(t.invalid_actions for t in done) / max(turns, 1),
                aborted=len(items) - len(done),
            )
        )
    return rows


@dataclass
class PairedGain:
    """The change of per-task success between two evaluations of the same tasks, paired by task: each
    task's mean success after minus before, so the spread between tasks cancels out of the interval."""

    gain: float  # mean per-task change (fraction of episodes)
    half_width: float  # 95% Student's t half-width over the paired tasks
    tasks: int  # tasks scored in both evaluations
    k: int  # samples per task (the smaller of the two evaluations')

    @property
    def low(self) -> float:
        return self.gain - self.half_width

    @property
    def high(self) -> float:
        return self.gain + self.half_width

    @property
    def significant(self) -> bool:
        """The 95% interval excludes zero."""
        return self.tasks > 1 and (self.low > 0 or self.high < 0)


def task_success(trajectories: Iterable[Trajectory]) -> dict[str, list[float]]:
    """Each task's scored samples (aborted episodes are never scored), keyed env/task_id."""
    samples: dict[str, list[float]] = defaultdict(list)
    for t in trajectories:
        if not t.aborted:
            samples[f"{t.env}/{t.task_id}"].append(float(t.success))
    return samples


def paired_gain(before: Iterable[Trajectory], after: Iterable[Trajectory]) -> PairedGain:
    """`after` minus `before` on the tasks both scored, with its paired 95% interval."""
    a, b = task_success(before), task_success(after)
    common = sorted(a.keys() & b.keys())
    gain, half = mean_ci([sum(b[t]) / len(b[t]) - sum(a[t]) / len(a[t]) for t in common])
    k = min((min(len(a[t]), len(b[t])) for t in common), default=0)
    return PairedGain(gain, half, len(common), k)


def markdown_table(rows: Sequence[EvalRow], title: str = "") -> str:
    head = (
        "| env | split | tier | category | tasks | eps | avg@k | pass@k | reward | turns | tokens | invalid "
        "| aborted |\n|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [f"### {title}\n" if title else "", head]
    for r in rows:
        lines.append(
            f"| {r.env} | {r.split} | {r.difficulty} | {r.category} | {r.tasks} | {r.episodes} "
            f"| {100 * r.avg_at_k:.1f} ± {100 * r.avg_ci:.1f} (k={r.k}) "
            f"| {100 * r.pass_at_k:.1f} ± {100 * r.pass_ci:.1f} "
            f"| {r.mean_reward:.3f} | {r.mean_turns:.2f} | {r.mean_tokens:.1f} | {100 * r.invalid_rate:.1f}% "
            f"| {r.aborted} |"
        )
    return "\n".join(line for line in lines if line) + "\n"

"""`gymwire report RUN_DIR`: one Markdown page with every table and plot of a run.

Reads what a run wrote (eval/<label>/results.json and trajectories.jsonl, metrics.jsonl,
config.json) and derives: the evaluation after each phase, held-in vs held-out (given the
training envs), the transfer matrix (stage x eval env, delta vs base), forgetting across stages,
learning curves, turns and tokens, and failure tags (with an optional LLM judge's categories beside
them in report/failures/<label>.jsonl).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gymwire.trainer.failures import NO_RECORDS, TAGS, tag_counts, tags
from gymwire.trainer.judge import CATEGORIES, NO_ANSWER, UNPARSEABLE, Judge
from gymwire.trainer.metrics import EvalRow, PairedGain, markdown_table, paired_gain, summarize
from gymwire.trainer.records import read_trajectories
from gymwire.trainer.types import Trajectory


@dataclass
class Evaluation:
    rows: list[EvalRow]
    trajectories: list[Trajectory]
    k: int
    samples: list[int]  # each trajectory's sample index in its file


def _load_eval(folder: Path) -> Evaluation:
    data = json.loads((folder / "results.json").read_text())
    rows = [EvalRow(**r) for r in data["rows"]]
    jsonl = folder / "trajectories.jsonl"
    records = list(read_trajectories(jsonl)) if jsonl.exists() else []
    k = int(data.get("spec", {}).get("k") or max((r.k for r in rows), default=1))
    return Evaluation(rows, [t for _, t in records], k, [i for i, _ in records])


def env_intervals(evaluation: Evaluation) -> dict[str, tuple[float, float | None]]:
    """avg@k per env over all its tiers with its 95% half-width (tasks as the unit), computed from the
    stored episodes; without them the rows' episode-weighted mean and no interval."""
    if evaluation.trajectories:
        return {r.env: (r.avg_at_k, r.avg_ci) for r in summarize(evaluation.trajectories, evaluation.k)}
    return {env: (v, None) for env, v in env_success(evaluation.rows).items()}


def _eval_order(run_dir: Path) -> list[str]:
    """Evaluations in the order the run made them (base, warm_start, stage-0-..., stage-1-...)."""
    labels = [p.name for p in (run_dir / "eval").iterdir() if (p / "results.json").exists()]

    def key(label: str) -> tuple:
        if label == "base":
            return (0, 0, 0)
        if label == "warm_start":
            return (1, 0, 0)
        parts = label.split("-")
        stage = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 99
        step = int(parts[-1]) if "step" in parts else 10**9
        return (2, stage, step)

    return sorted(labels, key=key)


def env_success(rows: Sequence[EvalRow]) -> dict[str, float]:
    """avg@k per env over all its tiers (episode-weighted)."""
    totals: dict[str, list[float]] = {}
    for r in rows:
        t = totals.setdefault(r.env, [0.0, 0.0])
        t[0] += r.avg_at_k * r.episodes
        t[1] += r.episodes
    return {env: s / n if n else 0.0 for env, (s, n) in totals.items()}


def _training_envs(run_dir: Path) -> list[list[str]]:
    config_path = run_dir / "config.json"
    if not config_path.exists():
        return []
    config = json.loads(config_path.read_text())
    return [sorted({m["env"] for m in stage["mix"]}) for stage in config["stages"]]


def _plot_curves(run_dir: Path, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.exists():
        return []
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not records:
        return []
    x = list(range(1, len(records) + 1))
    images = []
    for name, keys in (("learning_curve.png", ("success", "reward")), ("efficiency.png", ("turns", "tokens"))):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
        for ax, key in zip(axes, keys, strict=True):
            ax.plot(x, [r[key] for r in records], marker="o")
            ax.set_xlabel("training step")
            ax.set_ylabel(f"{key} per episode (training rollouts)")
            for i, r in enumerate(records[1:], start=1):
                if r["stage"] != records[i - 1]["stage"]:
                    ax.axvline(i + 0.5, color="grey", linestyle=":")
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        images.append(name)
    return images


def _plot_evals(labels: list[str], success: dict[str, dict[str, tuple[float, float | None]]], out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({e for s in success.values() for e in s})
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(labels) + 2), 3.4))
    width = 0.8 / max(len(envs), 1)
    for i, env in enumerate(envs):
        cells = [success[lbl].get(env, (0.0, None)) for lbl in labels]
        ax.bar(
            [j + i * width for j in range(len(labels))],
            [100 * v for v, _ in cells],
            width,
            label=env,
            yerr=[100 * ci if ci is not None else 0.0 for _, ci in cells],
            capsize=3,
        )
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=20, ha="right")
    ax.set_ylabel("avg@k success (%), 95% CI")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "evaluations.png", dpi=110)
    plt.close(fig)
    return "evaluations.png"


def _interval_table(labels: list[str], success: dict[str, dict[str, tuple[float, float | None]]]) -> list[str]:
    """The numbers behind the evaluations plot."""
    envs = sorted({e for s in success.values() for e in s})
    lines = [
        "## Success per evaluation (avg@k %, ± 95% Student's t interval over tasks)\n",
        "| evaluation | " + " | ".join(envs) + " |",
        "|---|" + "---:|" * len(envs),
    ]
    for lbl in labels:
        cells = [success[lbl].get(env) for env in envs]
        lines.append(
            f"| {lbl} | "
            + " | ".join(
                "" if c is None else f"{100 * c[0]:.1f}" + (f" ± {100 * c[1]:.1f}" if c[1] is not None else "")
                for c in cells
            )
            + " |"
        )
    return [*lines, ""]


def _count_table(title: str, counts: dict[str, Counter], names: Sequence[str]) -> list[str]:
    """Episodes per env and name, columns in the given order (only names that occur)."""
    names = [n for n in names if any(c.get(n) for c in counts.values())]
    if not names:
        return []
    lines = [f"{title}\n", "| env | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names)]
    lines += [f"| {env} | " + " | ".join(str(c.get(n, 0)) for n in names) + " |" for env, c in sorted(counts.items())]
    return [*lines, ""]


def _judge_failures(label: str, evaluation: Evaluation, judge: Judge | None, out: Path) -> list[str]:
    """Every failed episode's rule-based tags (and the judge's category) in report/failures/<label>.jsonl;
    the judge's categories as a table."""
    failed = [
        (i, t)
        for i, t in zip(evaluation.samples, evaluation.trajectories, strict=True)
        if not t.success and not t.aborted
    ]
    if not failed:
        return []
    judged = judge.judge_all([t for _, t in failed]) if judge is not None else []
    folder = out / "failures"
    folder.mkdir(exist_ok=True)
    with (folder / f"{label}.jsonl").open("w") as sink:
        for n, (sample, t) in enumerate(failed):
            record: dict = {"sample": sample, "env": t.env, "task_id": t.task_id, "tags": tags(t)}
            if judge is not None:
                record["judge"] = {"model": judge.model, **judged[n].as_dict()}
            sink.write(json.dumps(record) + "\n")
    if judge is None:
        return []
    counts: dict[str, Counter] = {}
    for (_, t), judgement in zip(failed, judged, strict=True):
        counts.setdefault(t.env, Counter())[judgement.category] += 1
    return _count_table(
        f"Judge ({judge.model}): one category per failed episode:", counts, (*CATEGORIES, UNPARSEABLE, NO_ANSWER)
    )


def _failure_section(trajectories: Sequence[Trajectory]) -> list[str]:
    counts = tag_counts(trajectories)
    lines = _count_table("Failure tags (episodes; see trainer/failures.py):", counts, (*TAGS, NO_RECORDS))
    untagged = sum(c.get(NO_RECORDS, 0) for c in counts.values())
    if untagged:
        lines.append(
            f"{untagged} failed episodes were stored without per-turn records (written before they "
            "existed): they are not tagged.\n"
        )
    return lines


def headline(evals: dict[str, Evaluation]) -> str:
    """The run's result in one sentence: the final evaluation against the warm start (else the base
    model), paired by task, with its 95% interval and whether that interval excludes zero."""
    finals = [lbl for lbl in evals if lbl.startswith("stage-") and "-step-" not in lbl]
    start = next((lbl for lbl in ("warm_start", "base") if lbl in evals), None)
    if not finals or start is None:
        return ""
    result = paired_gain(evals[start].trajectories, evals[finals[-1]].trajectories)
    if not result.tasks:
        return ""
    return f"**{describe_gain(result, 'the warm start' if start == 'warm_start' else 'the base model')}**\n"


def describe_gain(result: PairedGain, reference: str) -> str:
    verdict = (
        "the interval excludes zero" if result.significant else "the interval includes zero: not a significant change"
    )
    return (
        f"GRPO: {100 * result.gain:+.1f} points over {reference}, 95% CI [{100 * result.low:+.1f}, "
        f"{100 * result.high:+.1f}], {result.tasks} held-out tasks x {result.k} ({verdict})"
    )


def training_summary(run_dir: Path) -> list[str]:
    """How much of each GRPO step's batch could train: a group whose episodes all scored the same has
    zero advantage and teaches nothing; a step where every group did is a wasted batch."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = [r for r in records if "grpo/groups" in r]
    if not steps:
        return []
    groups = sum(int(r["grpo/groups"]) for r in steps)
    equal = sum(int(r.get("grpo/skipped_groups", 0)) for r in steps)
    wasted = [f"{r['stage']}/{r['step']}" for r in steps if int(r.get("grpo/skipped_groups", 0)) >= r["grpo/groups"]]
    line = (
        f"GRPO steps: {len(steps)}; groups with equal rewards (nothing to learn): {equal} of {groups}"
        f" ({100 * equal / max(groups, 1):.0f}%); steps that trained nothing: {len(wasted)}"
    )
    return [line + (f" ({', '.join(wasted)})" if wasted else "") + "\n"]


def write_report(run_dir: str | Path, judge: Judge | None = None) -> Path:
    """The report page; with a `judge`, also its category for every failed episode (see judge.py)."""
    run_dir = Path(run_dir)
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    labels = _eval_order(run_dir) if (run_dir / "eval").exists() else []
    evals = {label: _load_eval(run_dir / "eval" / label) for label in labels}
    success = {label: env_success(e.rows) for label, e in evals.items()}
    intervals = {label: env_intervals(e) for label, e in evals.items()}
    parts = [f"# Run report: {run_dir.name}\n"]
    top = headline(evals)
    if top:
        parts.append(top)
    parts.extend(training_summary(run_dir))
    if labels:
        parts.append(f"![evaluations]({_plot_evals(labels, intervals, out)})\n")
        parts.extend(_interval_table(labels, intervals))
    parts.extend(f"![curve]({name})\n" for name in _plot_curves(run_dir, out))

    stage_envs = _training_envs(run_dir)
    stage_labels = [lbl for lbl in labels if lbl.startswith("stage-") and "-step-" not in lbl]
    base = success.get("base")
    if stage_labels:
        trained = sorted({e for envs in stage_envs for e in envs})
        final = success[stage_labels[-1]]
        parts.append("## Held-in vs held-out (final model)\n")
        parts.append("| env | held | base | final | delta |\n|---|---|---:|---:|---:|")
        for env in sorted(final):
            b = base.get(env) if base else None
            held = "in" if env in trained else "out"
            delta = f"{100 * (final[env] - b):+.1f}" if b is not None else "n/a"
            parts.append(
                f"| {env} | {held} | {100 * b:.1f} | {100 * final[env]:.1f} | {delta} |"
                if b is not None
                else f"| {env} | {held} | n/a | {100 * final[env]:.1f} | n/a |"
            )
        parts.append("")
        parts.append("## Transfer matrix (avg@k after each stage, delta vs base)\n")
        envs = sorted({e for lbl in stage_labels for e in success[lbl]})
        parts.append("| after stage (trained on) | " + " | ".join(envs) + " |")
        parts.append("|---|" + "---:|" * len(envs))
        for i, lbl in enumerate(stage_labels):
            trained_here = ", ".join(stage_envs[i]) if i < len(stage_envs) else "?"
            cells = []
            for env in envs:
                v = success[lbl].get(env, 0.0)
                d = f" ({100 * (v - base[env]):+.1f})" if base and env in base else ""
                cells.append(f"{100 * v:.1f}{d}")
            parts.append(f"| {lbl} ({trained_here}) | " + " | ".join(cells) + " |")
        parts.append("")
        if len(stage_labels) > 1:
            parts.append("## Forgetting (change of each env since the stage that trained it)\n")
            parts.append("| env | trained in | right after | final | forgetting |\n|---|---|---:|---:|---:|")
            for env in envs:
                first = next((i for i, es in enumerate(stage_envs) if env in es), None)
                if first is None or first >= len(stage_labels):
                    continue
                after, last = success[stage_labels[first]].get(env, 0), final.get(env, 0)
                parts.append(
                    f"| {env} | {stage_labels[first]} | {100 * after:.1f} | {100 * last:.1f} "
                    f"| {100 * (after - last):+.1f} |"
                )
            parts.append("")
    for label, evaluation in evals.items():
        parts.append(markdown_table(evaluation.rows, f"Evaluation: {label}"))
        parts.extend(_failure_section(evaluation.trajectories))
        parts.extend(_judge_failures(label, evaluation, judge, out))
    page = out / "report.md"
    page.write_text("\n".join(parts) + "\n")
    return page

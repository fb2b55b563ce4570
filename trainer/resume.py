"""Exact resume: after a restart the run's records hold each step once, the steps its checkpoint kept.

A run resumes at a position (stage, step): the next step to run, the one right after the newest
checkpoint. Everything a killed run wrote beyond that position (metrics lines, rollout files,
evaluations of weights the checkpoint does not hold, a stale report) would otherwise be written a
second time by the resumed run, so it is moved to `set_aside/resume-K/` first, never overwritten,
and the resume is recorded in `resumes.jsonl`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger("gymwire.trainer")

POSITION_FILE = "position.json"  # in eval/<label>/: the (stage, steps done) of the weights evaluated
_ROLLOUT_FILE = re.compile(r"stage-(\d+)-step-(\d+)\.jsonl")


def write_position(eval_dir: Path, stage: int, steps_done: int) -> None:
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / POSITION_FILE).write_text(json.dumps({"stage": stage, "steps_done": steps_done}))


def set_aside_uncovered(run_dir: Path, stage: int, step: int, checkpoint: str) -> list[str]:
    """Move what the run wrote beyond position (stage, step) into a fresh `set_aside/resume-K/`,
    record the resume in `resumes.jsonl`, and return the paths set aside (relative to the run)."""
    resume_at = (stage, step)
    aside = _next_aside_folder(run_dir)
    moved: list[str] = []

    def move(path: Path) -> None:
        target = aside / path.relative_to(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        moved.append(str(path.relative_to(run_dir)))

    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        kept, dropped = _split_metrics(metrics.read_text(), resume_at)
        if dropped:
            aside.mkdir(parents=True, exist_ok=True)
            (aside / "metrics.jsonl").write_text("".join(dropped))
            tmp = metrics.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(kept))
            os.replace(tmp, metrics)
            moved.append(f"metrics.jsonl ({len(dropped)} lines)")
    for path in sorted((run_dir / "rollouts").glob("*.jsonl")):
        match = _ROLLOUT_FILE.fullmatch(path.name)
        if match is None or (int(match[1]), int(match[2])) >= resume_at:
            move(path)
    for folder in sorted((run_dir / "eval").glob("*/")):
        position = folder / POSITION_FILE
        if not position.exists():
            continue  # evaluations before GRPO (base, warm start): their weights never change
        where = json.loads(position.read_text())
        if (where["stage"], where["steps_done"]) > resume_at:
            move(folder)
    if (run_dir / "report").exists():
        move(run_dir / "report")
    record = {"time": time.time(), "stage": stage, "step": step, "checkpoint": checkpoint, "set_aside": moved}
    with (run_dir / "resumes.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    log.info(
        "resuming at stage %d step %d (%s); set aside: %s",
        stage,
        step,
        checkpoint or "no checkpoint yet",
        ", ".join(moved) or "nothing",
    )
    return moved


def _split_metrics(text: str, resume_at: tuple[int, int]) -> tuple[list[str], list[str]]:
    """Lines of steps before `resume_at`, and the rest (including a line a kill cut in half)."""
    kept, dropped = [], []
    for line in text.splitlines(keepends=True):
        try:
            record = json.loads(line) if line.endswith("\n") else None
        except ValueError:
            record = None
        if isinstance(record, dict) and (record.get("stage_index", 0), record.get("step", 0)) < resume_at:
            kept.append(line)
        elif line.strip():
            dropped.append(line if line.endswith("\n") else line + "\n")
    return kept, dropped


def _next_aside_folder(run_dir: Path) -> Path:
    root = run_dir / "set_aside"
    taken = [int(p.name.split("-")[1]) for p in root.glob("resume-*") if p.name.split("-")[1].isdigit()]
    return root / f"resume-{max(taken, default=0) + 1}"

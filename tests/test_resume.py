"""A training run killed at any phase resumes to exactly what an unkilled twin of it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

import pytest
import yaml

from gymwire.env_servers.local import LocalServer

STEPS = 4


def _config(run_dir: Path, address: str) -> dict:
    return {
        "run_dir": str(run_dir),
        "envs": {"parity": address},
        "seed": 5,
        "model": {"name": "smollm2", "threads": 1},
        "rollout": {"group_size": 4, "batch_tasks": 1, "max_new_tokens": 8, "max_total_tokens": 512},
        # Parity rewards split most groups, so the steps move the weights: a resume from the wrong
        # weights or optimizer state shows in later steps' sampler log-probs.
        "grpo": {"learning_rate": 1e-4, "beta": 0.0},
        "stages": [{"name": "easy", "steps": STEPS, "mix": [{"env": "parity"}]}],
        # An evaluation after step 3 sits between two checkpoints (every 2 steps).
        "eval": {"base": False, "tasks_per_env": 2, "k": 1, "every_steps": 3},
        "checkpoint": {"every": 2},
    }


def _start(config_path: Path, kill_at: str = "") -> tuple[subprocess.Popen, IO[bytes]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GYMWIRE_KILL_AT": kill_at}
    # Its errors go to a file: a pipe nobody reads while the run goes on could fill and stall it.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gymwire.cli.main", "train", "--config", str(config_path), "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=env,
    )
    return proc, log


def _finish(run: tuple[subprocess.Popen, IO[bytes]], kill_at: str = "") -> int:
    proc, log = run
    try:
        proc.wait(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log.seek(0)
    stderr = log.read().decode(errors="replace")
    log.close()
    if kill_at:
        assert proc.returncode == -9, f"not killed at {kill_at}: exit {proc.returncode}\n{stderr[-2000:]}"
    else:
        assert proc.returncode == 0, stderr[-3000:]
    return proc.returncode


def _train(config_path: Path, kill_at: str = "") -> int:
    return _finish(_start(config_path, kill_at), kill_at)


def _steady(record: dict) -> dict:
    """A record without what varies between two identical runs: wall-clock times."""
    return {k: v for k, v in record.items() if k != "time" and not k.endswith(("_s", "seconds"))}


def _episodes(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        for step in record["trajectory"]["steps"]:
            step["generate_s"] = step["step_s"] = 0.0
    return sorted(records, key=lambda r: (r["trajectory"]["task_id"], r["sample"]))


def _records(run_dir: Path) -> dict:
    metrics = [_steady(json.loads(line)) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rollouts = {p.name: _episodes(p) for p in sorted((run_dir / "rollouts").iterdir())}
    evals = {
        p.name: (_episodes(p / "trajectories.jsonl"), json.loads((p / "results.json").read_text())["rows"])
        for p in sorted((run_dir / "eval").iterdir())
    }
    return {"metrics": metrics, "rollouts": rollouts, "evals": evals}


@pytest.mark.slow
def test_a_run_killed_at_every_phase_resumes_to_its_unkilled_twin(tmp_path):
    with LocalServer("tests.parity_env:ParityEnvironment") as server:
        server.wait()
        twin_dir, killed_dir = tmp_path / "twin", tmp_path / "killed"
        for run_dir in (twin_dir, killed_dir):
            (tmp_path / f"{run_dir.name}.yaml").write_text(yaml.safe_dump(_config(run_dir, server.address)))
        # The twin runs beside the killed runs (one thread each): they share nothing but the server.
        twin = _start(tmp_path / "twin.yaml")
        try:
            # (kill point, the position state.json must name afterwards: (stage, steps its checkpoint holds))
            chain = [
                ("rollout:6", (0, 0)),  # step 1's rollout file cut short; no checkpoint yet
                ("checkpoint:1", (0, 0)),  # the first checkpoint half written
                ("metrics:3", (0, 2)),  # step 2 logged, not checkpointed
                ("update:2", (0, 2)),  # step 3 updated, after the evaluation at step 3 was recorded
                ("eval:3", (0, 4)),  # the stage's final evaluation half done
            ]
            for kill_at, position in chain:
                _train(tmp_path / "killed.yaml", kill_at)
                state = json.loads((killed_dir / "state.json").read_text())
                assert (state["stage"], state["step"]) == position, kill_at
            _train(tmp_path / "killed.yaml")
            _finish(twin)
        finally:
            if twin[0].poll() is None:
                twin[0].kill()
                twin[0].wait()

    twin, killed = _records(twin_dir), _records(killed_dir)
    assert [(r["stage_index"], r["step"]) for r in killed["metrics"]] == [(0, s) for s in range(STEPS)]
    assert killed["metrics"] == twin["metrics"]
    assert sum(r["grpo/optimizer_steps"] for r in twin["metrics"]) >= 2  # the weights moved (a group can tie)
    assert killed["rollouts"] == twin["rollouts"]
    assert sorted(killed["evals"]) == ["stage-0-easy", "stage-0-easy-step-3"]
    assert killed["evals"] == twin["evals"]
    assert json.loads((killed_dir / "state.json").read_text())["phase"] == "done"
    assert (killed_dir / "report" / "report.md").exists()

    # Every restart was recorded with the position it resumed from, and what it set aside is kept.
    resumes = [json.loads(line) for line in (killed_dir / "resumes.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["step"]) for r in resumes] == [position for _, position in chain]
    assert "eval/stage-0-easy-step-3" in resumes[3]["set_aside"] and resumes[4]["set_aside"] == []
    aside = killed_dir / "set_aside"
    assert sorted(p.name for p in aside.iterdir()) == [f"resume-{i}" for i in range(1, 5)]  # the last moved nothing
    dropped = [json.loads(line) for line in (aside / "resume-2" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in dropped] == [0, 1]  # the first checkpoint never completed
    assert (aside / "resume-4" / "eval" / "stage-0-easy-step-3" / "trajectories.jsonl").exists()

"""report_to: metrics.jsonl records and evaluation tables reach TensorBoard, W&B (offline) and trackio."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gymwire.trainer.config import ConfigError, parse_config
from gymwire.trainer.metrics import EvalRow
from gymwire.trainer.trackers import Trackers, eval_scalars, scalars

# Two steps as Trainer._log_step writes them (abridged), and an evaluation's rows.
RECORDS = [
    {
        "stage": "easy",
        "stage_index": 0,
        "step": 0,
        "time": 1.7e9,
        "tasks": ["textcraft/goal:a"],
        "episodes": 4,
        "aborted": 0,
        "success": 0.25,
        "reward": 0.25,
        "rollout_s": 12.5,
        "update_s": 3.0,
        "grpo/loss": 0.125,
        "grpo/groups": 2.0,
    },
    {
        "stage": "easy",
        "stage_index": 0,
        "step": 1,
        "time": 1.7e9 + 20,
        "tasks": ["textcraft/goal:b"],
        "episodes": 4,
        "aborted": 0,
        "success": 0.5,
        "reward": 0.5,
        "rollout_s": 11.0,
        "update_s": 2.5,
        "grpo/loss": -0.25,
        "grpo/groups": 2.0,
    },
]
ROWS = [
    EvalRow("textcraft", "test", "easy", "", 4, 8, 2, 0.375, 0.1, 0.5, 0.2, 0.375, 2.0, 12.0, 0.5, 0),
    EvalRow("babyai", "test", "easy", "", 4, 8, 2, 0.125, 0.1, 0.25, 0.2, 0.125, 3.0, 14.0, 0.6, 0),
]
EXPECTED_EVAL = {
    "eval/textcraft/easy/avg@2": 0.375,
    "eval/textcraft/easy/pass@2": 0.5,
    "eval/babyai/easy/avg@2": 0.125,
    "eval/babyai/easy/pass@2": 0.25,
}


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def _log_run(trackers: Trackers, records=RECORDS, first_step: int = 1) -> None:
    trackers.log_eval(ROWS, first_step - 1)
    for i, record in enumerate(records):
        trackers.log_record(record, first_step + i)


def test_records_become_scalars_under_their_own_names():
    values = scalars(RECORDS[0])
    assert values["reward"] == 0.25 and values["grpo/loss"] == 0.125 and values["stage_index"] == 0.0
    assert "step" not in values and "time" not in values and "stage" not in values and "tasks" not in values
    assert eval_scalars(ROWS) == EXPECTED_EVAL
    assert eval_scalars([r.as_dict() for r in ROWS], "eval_base") == {
        k.replace("eval/", "eval_base/"): v for k, v in EXPECTED_EVAL.items()
    }


def _tensorboard(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_holds_every_record_and_evaluation_at_its_step(tmp_path):
    _needs("tensorboard")
    with Trackers(["tensorboard"], tmp_path) as trackers:
        _log_run(trackers)
    scalars_ = _tensorboard(tmp_path / "tensorboard")
    assert scalars_["reward"] == [(1, 0.25), (2, 0.5)]
    assert scalars_["grpo/loss"] == [(1, 0.125), (2, -0.25)]
    assert scalars_["rollout_s"] == [(1, 12.5), (2, 11.0)]
    for tag, value in EXPECTED_EVAL.items():
        assert scalars_[tag] == [(0, value)]
    assert not {"step", "time", "stage", "tasks"} & set(scalars_)


def test_a_resumed_run_shows_each_step_once_in_tensorboard(tmp_path):
    """The killed run logged steps 1-3 but its checkpoint held step 1: the resumed run replays 2-3."""
    _needs("tensorboard")
    killed = [dict(RECORDS[0], reward=r) for r in (0.25, 0.5, 0.75)]
    with Trackers(["tensorboard"], tmp_path) as trackers:
        for step, record in enumerate(killed, start=1):
            trackers.log_record(record, step)
    with Trackers(["tensorboard"], tmp_path, purge_step=2) as trackers:
        for step, reward in ((2, 0.0), (3, 1.0), (4, 1.0)):
            trackers.log_record(dict(RECORDS[0], reward=reward), step)
    assert _tensorboard(tmp_path / "tensorboard")["reward"] == [(1, 0.25), (2, 0.0), (3, 1.0), (4, 1.0)]


def _wandb_history(run_dir: Path) -> list[dict]:
    """The history rows of an offline W&B run, read from its .wandb file (a LevelDB-style record log)
    once W&B's service has written the run's exit record (it writes on after `finish()` returns)."""
    deadline = time.monotonic() + 60
    while True:
        rows, ended = _wandb_records(run_dir)
        if ended or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _wandb_records(run_dir: Path) -> tuple[list[dict], bool]:
    from wandb.proto import wandb_internal_pb2

    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    data, pos, chunk, rows, ended = path.read_bytes(), 7, b"", [], False
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            chunk = b""
            kind_ = record.WhichOneof("record_type")
            ended |= kind_ == "exit"
            if kind_ == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return rows, ended


def test_wandb_offline_run_holds_the_records_at_their_steps(tmp_path, monkeypatch):
    _needs("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_PROJECT", "gymwire-test")
    with Trackers(["wandb"], tmp_path, config={"seed": 3}) as trackers:
        _log_run(trackers)
    rows = {row["_step"]: row for row in _wandb_history(tmp_path)}
    assert sorted(rows) == [0, 1, 2]
    assert {k: rows[0][k] for k in EXPECTED_EVAL} == EXPECTED_EVAL
    for step, record in ((1, RECORDS[0]), (2, RECORDS[1])):
        assert {k: rows[step][k] for k in ("reward", "success", "grpo/loss", "update_s")} == {
            k: record[k] for k in ("reward", "success", "grpo/loss", "update_s")
        }
        assert "stage" not in rows[step] and "time" not in rows[step]
    run_id = (tmp_path / "wandb-id").read_text().strip()
    assert (tmp_path / "wandb" / "latest-run").resolve().name.endswith(run_id)  # a resume reuses this id


def test_trackio_run_holds_the_records_at_their_steps(tmp_path):
    """In a child process: trackio reads TRACKIO_DIR (its local store) when it is imported."""
    _needs("trackio")
    script = f"""
import json, sys
from gymwire.trainer.trackers import Trackers
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_trackers import _log_run
with Trackers(["trackio"], {str(tmp_path / "my-run")!r}) as trackers:
    _log_run(trackers)
from trackio.sqlite_storage import SQLiteStorage
print("LOGS" + json.dumps(SQLiteStorage.get_logs("gymwire-test", "my-run")))
"""
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "store"), "TRACKIO_PROJECT": "gymwire-test"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    logs = json.loads(done.stdout.split("LOGS", 1)[1].splitlines()[0])
    by_step: dict[int, dict] = {}
    for row in logs:
        by_step.setdefault(row["step"], {}).update(row)
    assert sorted(by_step) == [0, 1, 2]
    assert {k: by_step[0][k] for k in EXPECTED_EVAL} == EXPECTED_EVAL
    assert [by_step[s]["reward"] for s in (1, 2)] == [0.25, 0.5]
    assert [by_step[s]["grpo/loss"] for s in (1, 2)] == [0.125, -0.25]


def _config(**extra) -> dict:
    return {
        "envs": {"textcraft": "127.0.0.1:1"},
        "stages": [{"name": "easy", "steps": 1, "mix": [{"env": "textcraft"}]}],
        **extra,
    }


def test_report_to_is_checked_with_the_config(monkeypatch):
    assert parse_config(_config()).report_to == []
    assert parse_config(_config(report_to="none")).report_to == []
    with pytest.raises(ConfigError, match=r"report_to\[0\]: 'mlflow' is not one of tensorboard, wandb, trackio"):
        parse_config(_config(report_to=["mlflow"]))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r'report_to: wandb needs the wandb package.*pip install "gymwire\[wandb\]"'):
        parse_config(_config(report_to=["wandb"]))

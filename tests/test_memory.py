"""Memory hygiene between the main job's phases, and the phase reader of bench/memory.py."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

import pytest

from bench.memory import phase_of
from gymwire.trainer.model import release_memory
from gymwire.trainer.policy.hf import HFPolicy


def test_closed_policy_lets_go_of_the_model_it_loaded_but_not_of_a_borrowed_one():
    gc.disable()  # the policy <-> batcher cycle must not be what frees the model here
    try:
        owned = HFPolicy("smollm2")
        model = weakref.ref(owned.model)
        owned.close()
        assert model() is None, "a closed policy still holds the model it loaded"

        borrowed = HFPolicy(owned_model := HFPolicy("smollm2").model, owned.tokenizer)
        borrowed.close()
        assert borrowed.model is owned_model, "a policy over the trainer's live model must leave it alone"
    finally:
        gc.enable()
    release_memory()  # callable anywhere; on glibc it also trims the heap


def _write(run: Path, state: dict | None = None, evals: tuple[str, ...] = (), steps: int = 0) -> None:
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text(json.dumps({"stages": [{"steps": 3}], "warm_start": {"episodes": 2}}))
    if state is not None:
        (run / "state.json").write_text(json.dumps(state))
    for label in evals:
        (run / "eval" / label).mkdir(parents=True, exist_ok=True)
    if steps:
        (run / "metrics.jsonl").write_text("{}\n" * steps)


@pytest.mark.parametrize(
    ("state", "evals", "steps", "phase"),
    [
        (None, (), 0, "setup"),
        (None, ("base",), 0, "base eval"),
        ({"phase": "start", "evaluations": ["base"]}, ("base",), 0, "warm start"),
        ({"phase": "warm_started", "evaluations": ["base"]}, ("base",), 0, "updater"),
        ({"phase": "warm_started", "evaluations": ["base"]}, ("base", "warm_start"), 0, "warm-start eval"),
        ({"phase": "warm_started", "evaluations": ["base", "warm_start"]}, ("base", "warm_start"), 0, "grpo step 1"),
        ({"phase": "training", "evaluations": ["base", "warm_start"]}, ("base", "warm_start"), 2, "grpo step 3"),
        (
            {"phase": "training", "evaluations": ["base", "warm_start"]},
            ("base", "warm_start", "stage-0-easy"),
            3,
            "final eval",
        ),
        ({"phase": "done", "evaluations": ["base", "warm_start", "stage-0-easy"]}, (), 3, "export"),
    ],
)
def test_phase_is_read_from_the_run_folder(tmp_path, state, evals, steps, phase):
    _write(tmp_path, state, evals, steps)
    assert phase_of(tmp_path) == phase


def test_report_folder_is_the_last_phase(tmp_path):
    _write(tmp_path, {"phase": "done"})
    (tmp_path / "report").mkdir()
    assert phase_of(tmp_path) == "report"

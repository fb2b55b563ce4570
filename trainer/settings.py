"""The engines' settings, one dataclass each, read straight from a run config's sections.

Each class is the object its engine takes (`RolloutEngine(pool, policy, RolloutConfig, {env:
EnvConfig})`, `GRPOUpdater(model, GRPOConfig)`, `VLLMPolicy(model, settings=VLLMConfig)`, the
trainer's checkpointing, `evaluate(pool, agent, EvalSpec)`), so a run config's `rollout:`, `grpo:`,
`vllm:` and `checkpoint:` sections (each stage's mix entries, which are EnvConfigs, and the `eval:`
section, an EvalSpec) are parsed into them once and nothing copies fields from one to another. This
module imports no torch and no gRPC: a config is validated without loading any engine.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from gymwire.trainer.renamed import renamed
from gymwire.trainer.types import SamplingParams

PRECISIONS = ("auto", "fp32", "bf16-mixed", "bf16")
# How an episode reaches its server, as the client's `reset(transport=...)` names it: "multiplex"
# (every episode of a connection on one Multiplex stream, the cheapest path; a Session stream per
# episode where the server has no Multiplex), "session" (a Session stream per episode, which frees the
# session the moment it ends) or "unary" (one call per operation).
Transport = Literal["multiplex", "session", "unary"]


@dataclass(frozen=True)
class EnvConfig:
    """Per-environment switches a stage controls (the paper's action-list ablation among them)."""

    max_turns: int = 0  # 0: the environment's default
    show_valid_actions: bool = False  # put the legal actions into every observation the agent reads
    history_turns: int | None = None  # keep only the last K exchanges in the prompt (None: all)


@dataclass(frozen=True)
class EvalSpec:
    """Which tasks an evaluation plays and how often: what `evaluate` takes."""

    envs: Sequence[str] = ()  # environment names in the pool; empty = all
    split: str = "test"
    difficulty: str = ""
    category: str = ""  # one category, or several separated by commas
    tasks_per_env: int = 16  # per env (and per difficulty when `difficulty` is empty); 0 = all listed
    k: int = 4  # samples per task
    seed: int = 0  # which tasks are drawn


@dataclass(frozen=True, kw_only=True)
class RolloutConfig:
    """How episodes are played: a run config's `rollout:` section, and what `RolloutEngine` takes.
    group_size and batch_tasks are read by whoever draws the tasks (the trainer), not by the engine."""

    group_size: int = 8  # G: samples per task (the paper: 8)
    batch_tasks: int = 16  # tasks per step (the paper: 16)
    max_new_tokens: int = 200  # per turn
    temperature: float = 1.0
    top_p: float = 1.0
    max_total_tokens: int = 4096  # the whole conversation's budget
    abort_retries: int = 2  # an aborted episode is started again this many times before it is dropped
    system_prompt: str | None = None  # prepended to the env's own instruction when set
    transport: Transport = "multiplex"
    # Start an episode only while the episodes in flight fit the engine's KV cache (policy/admission.py):
    # bench.kv_admission measured 1.3x (TextCraft depth-1) and at least 1.7x (BabyAI hard) over all at once.
    kv_admission: bool = True

    def __post_init__(self) -> None:
        if self.transport not in typing.get_args(Transport):
            raise ValueError(
                f"transport must be one of {', '.join(typing.get_args(Transport))}, got {self.transport!r}"
            )

    @property
    def sampling(self) -> SamplingParams:
        """Each turn's sampling request (the engine adds a seed per episode)."""
        return SamplingParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p)


@dataclass
class LoRAConfig:
    """LoRA adapters instead of full fine-tuning when rank > 0 (peft)."""

    rank: int = 0  # 0: full fine-tuning
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"  # peft's names, e.g. [q_proj, v_proj], or "all-linear"

    def __post_init__(self) -> None:
        if self.rank < 0:
            raise ValueError("rank must be >= 0")
        if not self.target_modules:
            raise ValueError("target_modules must name at least one module (or be 'all-linear')")


@dataclass
class GRPOConfig:
    """The policy update. Defaults follow the paper (AgentGym-RL: lr 1e-6, KL 0.001).

    Off-policy correction: the sampler (vLLM) and the trainer compute slightly different
    probabilities for the same weights, and a server-mode sampler may lag a step. With
    `old_logprobs: trainer` the PPO ratio is taken against the trainer's own log-probs recomputed
    before the update, so the clip measures only how far the update moved the policy; the
    sampler/trainer gap is corrected separately by a truncated importance weight
    min(p_trainer / p_sampler, importance_cap) per token (TRL's and verl's TIS), or tokens above
    the cap are masked out (`importance_sampling: token_mask`). `dual_clip` bounds the loss of
    negative-advantage tokens whose ratio is large (verl's clip_ratio_c).
    """

    learning_rate: float = 1e-6
    beta: float = 0.001  # KL(policy || reference) coefficient, k3 estimator; 0 -> no reference model at all
    epsilon: float = 0.2  # PPO clip range below 1 (and above 1 unless epsilon_high is set)
    epsilon_high: float | None = None  # DAPO "clip higher"; None -> epsilon
    dual_clip: float | None = 3.0  # bound on -ratio*A for A < 0 (> 1); None: no dual clip
    old_logprobs: Literal["trainer", "sampler"] = "trainer"
    importance_sampling: Literal["token_truncate", "token_mask", "none"] = "token_truncate"
    importance_cap: float = 2.0  # upper bound of the per-token sampler->trainer weight
    scale_rewards: bool = True  # divide by the group std; False = Dr. GRPO (mean-centred only)
    advantage_eps: float = 1e-4  # added to the group std
    # episode: every token of an episode carries the episode's group-relative advantage (GRPO).
    # turn: GiGPO's turn-level credit (trainer/turn_credit.py): each turn's tokens carry the episode's
    # advantage plus turn_weight x the turn's discounted return (turn_gamma) relative to the group's
    # turns taken from the same state (the environment's state keys, or the observation text).
    advantage: Literal["episode", "turn"] = "episode"
    turn_gamma: float = 0.95  # GiGPO's gamma
    turn_weight: float = 1.0  # GiGPO's omega
    # "sequences": per-episode mean, then mean over episodes; every episode weighs the same.
    # "tokens" (verl's token-mean): every trained token weighs the same, so long episodes (in
    # multi-turn play often the failures, which run to the turn limit) weigh more. The recorded runs
    # (bench/results/learning*.json, one per setting) cannot tell the two apart; see the README.
    loss_normalization: Literal["tokens", "sequences"] = "sequences"
    temperature: float = 1.0  # the sampling temperature (set from rollout.temperature by a run config)
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 0  # linear warm-up of the learning rate, then constant
    # Optimizer steps per rollout batch: the episodes are split into this many mini-batches (verl's
    # ppo_mini_batch_size). With 1 the update is on-policy and the ratio is exactly 1 on the trainer;
    # above 1 later mini-batches are off-policy, and the clip and old_logprobs: trainer do their work.
    updates_per_step: int = 1
    token_budget: int = 4096  # padded tokens (sequences x longest) per forward/backward
    # Run the prompt a micro-batch's sequences share (a group's system prompt, instruction and first
    # observation) once instead of once per sequence: the same loss and gradient, a 1.46x faster step
    # on TextCraft episodes (bench/results/update.json; one process; under FSDP2 every row runs in full).
    share_prefix: bool = True
    # fp32: fp32 weights and maths. bf16-mixed: fp32 master weights and AdamW, bf16 autocast.
    # bf16: bf16 weights and AdamW states (half the memory), the updates rounded stochastically so
    # that steps far below bf16's spacing still move the weights (trainer/bf16_adamw.py). auto:
    # bf16-mixed on CUDA, fp32 elsewhere.
    precision: Literal["auto", "fp32", "bf16-mixed", "bf16"] = "auto"
    gradient_checkpointing: bool = False
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    cpu_offload: bool = False  # under FSDP: parameters, gradients and optimizer state live in CPU RAM
    device: str | None = None  # None -> cuda when available, else cpu

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            self.lora = LoRAConfig(**self.lora)
        if self.loss_normalization not in ("tokens", "sequences"):
            raise ValueError(f"loss_normalization must be 'tokens' or 'sequences', got {self.loss_normalization!r}")
        if self.old_logprobs not in ("trainer", "sampler"):
            raise ValueError(f"old_logprobs must be 'trainer' or 'sampler', got {self.old_logprobs!r}")
        if self.importance_sampling not in ("token_truncate", "token_mask", "none"):
            raise ValueError(
                f"importance_sampling must be token_truncate, token_mask or none, got {self.importance_sampling!r}"
            )
        if self.advantage not in ("episode", "turn"):
            raise ValueError(f"advantage must be 'episode' or 'turn', got {self.advantage!r}")
        if not 0.0 <= self.turn_gamma <= 1.0:
            raise ValueError(f"turn_gamma must be within [0, 1] (GiGPO uses 0.95), got {self.turn_gamma!r}")
        if not self.turn_weight >= 0.0 or self.turn_weight == float("inf"):
            raise ValueError(f"turn_weight must be a finite number >= 0 (GiGPO uses 1), got {self.turn_weight!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        if self.token_budget < 1:
            raise ValueError("token_budget must be >= 1")
        if self.epsilon <= 0 or (self.epsilon_high is not None and self.epsilon_high <= 0):
            raise ValueError("epsilon and epsilon_high must be > 0")
        if self.dual_clip is not None and self.dual_clip <= 1.0:
            raise ValueError("dual_clip must be > 1 (verl uses 3), or null to turn it off")
        if self.importance_cap < 1.0:
            raise ValueError("importance_cap must be >= 1")
        if self.updates_per_step < 1:
            raise ValueError("updates_per_step must be >= 1")
        if self.warmup_steps < 0:
            raise ValueError("warmup_steps must be >= 0")
        if len(self.adam_betas) != 2:
            raise ValueError("adam_betas must be two numbers")

    def resolved_precision(self, device_type: str) -> str:
        if self.precision != "auto":
            return self.precision
        return "bf16-mixed" if device_type == "cuda" else "fp32"


@dataclass
class VLLMConfig:
    """The vLLM engine of `model.backend: vllm` (in this process) or `openai` (a server).

    On one GPU shared with the update, keep `gpu_memory_utilization` low enough for the update or
    turn on `enable_sleep_mode` (the engine frees its weights and KV cache while the update runs).
    """

    max_model_len: int = 4096
    gpu_memory_utilization: float = 0.5  # share of the GPU vLLM may claim (weights + KV cache)
    tensor_parallel_size: int = 1
    enable_sleep_mode: bool = False  # CUDA only
    # auto: float32 on CPU (log-probs agree with an fp32 trainer to ~1e-3), the model's own dtype on GPU.
    # A CPU with bf16 instructions (model.cpu_has_bf16_matmul) runs bfloat16 ~1.75x faster: the main job does.
    dtype: str = "auto"
    enforce_eager: bool | None = None  # None: eager on CPU (compiling costs minutes), graphs on GPU
    kv_cache_gib: float = 1.0  # CPU only: the KV cache's size (vLLM's kv_cache_memory_bytes), fractions allowed
    max_num_seqs: int | None = None  # None: vLLM's default
    enable_prefix_caching: bool | None = None  # None: vLLM's default
    # backend openai: the server's URL, and how new weights reach it. nccl: over a NCCL group
    # (a server on other GPUs); disk: a folder both can read (a server on the same machine, CPU).
    server_url: str = ""
    weight_sync: Literal["auto", "memory", "nccl", "disk"] = "auto"
    nccl_address: str = ""  # nccl: this trainer's address as the server can reach it ("" = this host's name)
    nccl_port: int = 0  # nccl: the rendezvous port (0 = a free one)
    # After each sync, the sampler's and the trainer's log-probs of one episode are compared; a
    # larger mean gap than this fails the run (the weights did not arrive).
    sync_check_tolerance: float = 0.05
    engine_kwargs: dict[str, Any] = field(default_factory=dict)  # anything else vLLM's LLM() takes

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be >= 1")
        if self.max_model_len < 16:
            raise ValueError("max_model_len must be >= 16")
        if not self.kv_cache_gib > 0:
            raise ValueError(f"kv_cache_gib must be > 0, got {self.kv_cache_gib}")
        if self.weight_sync not in ("auto", "memory", "nccl", "disk"):
            raise ValueError(f"weight_sync must be auto, memory, nccl or disk, got {self.weight_sync!r}")

    def engine_args(self, *, on_cpu: bool) -> dict[str, Any]:
        """Keyword arguments for vLLM's `LLM(...)` (everything but the model and the seed)."""
        args: dict[str, Any] = {
            "dtype": ("float32" if on_cpu else "auto") if self.dtype == "auto" else self.dtype,
            "enforce_eager": on_cpu if self.enforce_eager is None else self.enforce_eager,
            "max_model_len": self.max_model_len,
            "tensor_parallel_size": self.tensor_parallel_size,
            # The logprob of each sampled token from the distribution it was drawn from (temperature,
            # top-p), the same definition as the transformers backend and the trainer.
            "logprobs_mode": "processed_logprobs",
        }
        if on_cpu:
            args["kv_cache_memory_bytes"] = int(self.kv_cache_gib * (1 << 30))
            # The prefix cache reuses whole blocks only: with the CPU default of 128 tokens a turn
            # recomputes up to 127 tokens of the conversation before its new ones; 32 is the
            # smallest size the CPU attention takes (prefill of repeated prompts 22 s -> 14 s).
            args["block_size"] = 32
        else:
            args["gpu_memory_utilization"] = self.gpu_memory_utilization
            args["enable_sleep_mode"] = self.enable_sleep_mode
        if self.max_num_seqs is not None:
            args["max_num_seqs"] = self.max_num_seqs
        if self.enable_prefix_caching is not None:
            args["enable_prefix_caching"] = self.enable_prefix_caching
        args.update(self.engine_kwargs)
        return args


@dataclass
class CheckpointConfig:
    """Resume points in `checkpoints/step-N/`; `state.json` names the newest complete one."""

    every: int = 1  # steps between checkpoints (0: only at the end of each stage)
    keep_last: int = 1  # older checkpoints are deleted once a newer one is complete
    weights_only: bool = False  # no optimizer state (a 7B AdamW state is ~60 GB): resuming restarts AdamW

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ValueError("every must be >= 0")
        if self.keep_last < 1:
            raise ValueError("keep_last must be >= 1")


_UNITS = {"": 1 << 30, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
_UNITS.update({"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12})


def parse_memory(value: int | float | str) -> int:
    """Bytes from 80GiB, 80GB (10^9), 81559MiB, or a bare number of GiB."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        amount, unit = float(value), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]i?B)?\s*", str(value), flags=re.IGNORECASE)
        if match is None:
            raise ValueError(f"{value!r} is not a size such as 80GiB, 141GB or 80 (GiB)")
        amount, unit = float(match.group(1)), (match.group(2) or "").lower()
    if amount <= 0:
        raise ValueError(f"{value!r} must be > 0")
    return int(amount * _UNITS[unit])


@dataclass
class HardwareConfig:
    """The GPUs a run config is sized for: `gymwire plan` and `gymwire train` check its memory plan
    against them. `gpus`: the GPUs the update runs on (torchrun's processes, one each); a vLLM
    server of `model.backend: openai` runs on GPUs of its own, not counted here."""

    gpus: int = 1
    gpu_memory: str | float = "80GiB"  # per GPU: 80GiB, 141GB, or a number of GiB

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise ValueError("gpus must be >= 1")
        try:
            parse_memory(self.gpu_memory)
        except ValueError as exc:
            raise ValueError(f"gpu_memory {exc}") from None

    @property
    def gpu_memory_bytes(self) -> int:
        return parse_memory(self.gpu_memory)


if not TYPE_CHECKING:  # the names before every config object took the suffix Config
    __getattr__ = renamed(
        __name__,
        {
            "LoRASettings": "LoRAConfig",
            "VLLMSettings": "VLLMConfig",
            "CheckpointSettings": "CheckpointConfig",
            "HardwareSettings": "HardwareConfig",
        },
        globals(),
    )

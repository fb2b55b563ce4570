"""Will a run config fit its GPUs? A memory plan from the model's config, before any weight loads.

The model is built on PyTorch's meta device from its config (transformers' `AutoConfig` and
`from_config`: shapes, no storage), so parameter counts, the decoder layers and the Linear modules
LoRA adapts are the real model's. The config comes from `--model-config`, the model's local folder or
the local Hugging Face cache, else from `SHAPES`: the published config.json values of the
architectures the shipped configs name, so the plan works on a machine without the model.

Per GPU, in the two phases of a step (trainer/train.py):
- rollouts: the trainer's resident state (weights, AdamW moments, reference model) beside vLLM's
  share of the GPU (`vllm.gpu_memory_utilization`, claimed when the engine is awake);
- update: the resident state plus gradients, activations and logits of one micro-batch, with vLLM
  asleep (`enable_sleep_mode`: weights and KV cache released) or still holding its share.
A run fits when the larger of the two is within the GPU's memory.

The activation and logits terms are estimates of what the update's code keeps (documented at each
formula below), for Llama/Qwen2-style decoders with sdpa attention; weights, gradients, optimizer
state and reference are exact byte counts. Under torchrun (`gpus` > 1) the update is FSDP2-sharded
(trainer/distributed.py): weights, gradients, moments and reference divide by the GPU count, while
each rank's activations and its gathered layers do not.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from gymwire.trainer.config import RunConfig
from gymwire.trainer.settings import parse_memory

GIB = 1 << 30

# Published config.json values (huggingface.co/<name>/blob/main/config.json). Only the fields that
# decide the shape; the rest is the architecture's default.
_QWEN2 = {"model_type": "qwen2", "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0}
_LLAMA = {"model_type": "llama", "hidden_act": "silu", "rms_norm_eps": 1e-5}
SHAPES: dict[str, dict[str, Any]] = {
    "Qwen/Qwen2.5-0.5B-Instruct": {
        **_QWEN2,
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
        "max_position_embeddings": 32768,
    },
    "Qwen/Qwen2.5-1.5B-Instruct": {
        **_QWEN2,
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
        "max_position_embeddings": 32768,
    },
    "Qwen/Qwen2.5-3B-Instruct": {
        **_QWEN2,
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
        "max_position_embeddings": 32768,
    },
    "Qwen/Qwen2.5-7B-Instruct": {
        **_QWEN2,
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
        "max_position_embeddings": 32768,
    },
    "Qwen/Qwen2.5-14B-Instruct": {
        **_QWEN2,
        "hidden_size": 5120,
        "intermediate_size": 13824,
        "num_hidden_layers": 48,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "vocab_size": 152064,
        "tie_word_embeddings": False,
        "max_position_embeddings": 32768,
    },
    "HuggingFaceTB/SmolLM2-135M-Instruct": {
        **_LLAMA,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
        "max_position_embeddings": 8192,
        "rope_theta": 100000.0,
    },
    "HuggingFaceTB/SmolLM2-360M-Instruct": {
        **_LLAMA,
        "hidden_size": 960,
        "intermediate_size": 2560,
        "num_hidden_layers": 32,
        "num_attention_heads": 15,
        "num_key_value_heads": 5,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
        "max_position_embeddings": 8192,
        "rope_theta": 100000.0,
    },
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": {
        **_LLAMA,
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 24,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
        "max_position_embeddings": 8192,
        "rope_theta": 130000.0,
    },
}
# The embedded default model (trainer/model.py) is SmolLM2-135M-Instruct.
ALIASES = {
    a: "HuggingFaceTB/SmolLM2-135M-Instruct" for a in ("smollm2", "smollm2-135m", "smollm2-135m-instruct", "default")
}

# Bytes per element: (trained weights, gradients, AdamW's two moments, compute, reference copy).
# bf16-mixed keeps fp32 master weights and moments and computes in bf16; its reference is bf16
# (evaluated without gradients only). bf16 keeps everything in bf16 (trainer/bf16_adamw.py).
PRECISION_BYTES = {
    "fp32": {"weights": 4, "grads": 4, "optimizer": 8, "compute": 4, "reference": 4},
    "bf16-mixed": {"weights": 4, "grads": 4, "optimizer": 8, "compute": 2, "reference": 2},
    "bf16": {"weights": 2, "grads": 2, "optimizer": 4, "compute": 2, "reference": 2},
}
CUDA_CONTEXT = 1 * GIB  # per process: CUDA context, cuBLAS workspaces, NCCL buffers (estimate)
VLLM_ASLEEP = 1 * GIB  # vLLM after sleep(): its CUDA graphs and buffers stay (estimate)
LOGSOFTMAX_CHUNK_BYTES = 4 * (1 << 24)  # trainer/grpo_loss.py's LOGSOFTMAX_CHUNK_ELEMENTS in fp32, ~3 alive at once


class PlanError(ValueError):
    """The plan cannot be made (unknown model shape) or the config does not fit its GPUs."""


@dataclass(frozen=True)
class ModelShape:
    """What the plan needs of a model, read off the model built on the meta device."""

    name: str
    source: str  # where the config came from
    params: int  # unique parameters (a tied embedding counted once)
    layers: int
    layer_params: int  # one decoder layer
    hidden: int
    intermediate: int
    vocab: int
    tied: bool
    linears: tuple[tuple[str, int, int], ...]  # (module name, in_features, out_features), LM head included
    output_name: str  # the LM head's module name (peft's all-linear leaves it out)

    @property
    def root_params(self) -> int:
        """Embeddings, final norm and LM head: FSDP2's root group (trainer/distributed.py)."""
        return self.params - self.layers * self.layer_params

    def lora_params(self, rank: int, targets: list[str] | str) -> int:
        """Adapter parameters peft adds: rank x (in + out) per adapted Linear."""
        if rank <= 0:
            return 0
        total = 0
        for name, fan_in, fan_out in self.linears:
            if targets == "all-linear":
                hit = name != self.output_name
            else:
                names = [targets] if isinstance(targets, str) else targets
                hit = any(name == t or name.endswith(f".{t}") for t in names)
            if hit:
                total += rank * (fan_in + fan_out)
        return total


def _config_dict(model: str, model_config: str | os.PathLike[str] | None) -> tuple[dict[str, Any], str]:
    if model_config is not None:
        return json.loads(Path(model_config).read_text()), str(model_config)
    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        return json.loads((folder / "config.json").read_text()), str(folder / "config.json")
    key = ALIASES.get(model.lower(), model)
    if "/" in key and not folder.exists():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(key, "config.json")
        except Exception:  # noqa: BLE001 - a malformed id or cache: fall back to the table
            cached = None
        if isinstance(cached, str):
            return json.loads(Path(cached).read_text()), cached
    for known, shape in SHAPES.items():
        if known.lower() == key.lower():
            return dict(shape), f"published config of {known} (shipped table)"
    raise PlanError(
        f"model {model!r}: no config.json (not a local folder, not in the Hugging Face cache) and not in "
        f"the shipped table ({', '.join(SHAPES)}); pass --model-config path/to/config.json"
    )


@lru_cache(maxsize=16)
def _shape(model: str, model_config: str | None) -> ModelShape:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    data, source = _config_dict(model, model_config)
    data = {k: v for k, v in data.items() if k not in ("quantization_config", "auto_map")}
    model_type = data.pop("model_type", None)
    if not model_type:
        raise PlanError(f"{source}: no model_type")
    try:
        config = AutoConfig.for_model(model_type, **data)
        with torch.device("meta"):
            built = AutoModelForCausalLM.from_config(config)
    except (ValueError, TypeError, KeyError) as exc:  # an architecture transformers cannot build as a causal LM
        reason = str(exc).split(". ")[0][:200]  # transformers appends the list of every model type it knows
        raise PlanError(f"{source}: cannot build a {model_type!r} causal LM from it: {reason}") from None
    from gymwire.trainer.distributed import decoder_layers

    layers = decoder_layers(built)
    output = built.get_output_embeddings()
    output_name = next((n for n, m in built.named_modules() if m is output), "lm_head")
    linears = tuple(
        (name, m.in_features, m.out_features) for name, m in built.named_modules() if isinstance(m, torch.nn.Linear)
    )
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return ModelShape(
        name=model,
        source=source,
        params=sum(p.numel() for p in built.parameters()),
        layers=len(layers),
        layer_params=sum(p.numel() for p in layers[0].parameters()),
        hidden=int(text.hidden_size),
        intermediate=int(text.intermediate_size),
        vocab=int(text.vocab_size),
        tied=bool(getattr(text, "tie_word_embeddings", False)),
        linears=linears,
        output_name=output_name,
    )


def model_shape(model: str, model_config: str | os.PathLike[str] | None = None) -> ModelShape:
    return _shape(str(model), str(model_config) if model_config is not None else None)


# ---- the plan ------------------------------------------------------------------------------------


@dataclass
class Row:
    component: str
    rollouts: int  # bytes on the busiest GPU while vLLM generates
    update: int  # ... while the update runs
    how: str


@dataclass
class MemoryPlan:
    shape: ModelShape
    gpus: int
    gpu_memory: int
    setup: str  # one line: training mode, precision, batch
    rows: list[Row] = field(default_factory=list)
    checkpoint_bytes: int = 0
    checkpoint_note: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def rollouts(self) -> int:
        return sum(r.rollouts for r in self.rows)

    @property
    def update(self) -> int:
        return sum(r.update for r in self.rows)

    @property
    def peak(self) -> int:
        return max(self.rollouts, self.update)

    @property
    def fits(self) -> bool:
        return self.peak <= self.gpu_memory

    def component(self, name: str) -> Row:
        return next(r for r in self.rows if r.component.startswith(name))

    def table(self) -> str:
        head = (
            f"{self.shape.name}: {self.shape.params / 1e9:.2f} B parameters "
            f"({self.shape.layers} layers, hidden {self.shape.hidden}, vocabulary {self.shape.vocab}; "
            f"from {self.shape.source})"
        )
        where = f"{self.gpus} x {_gib(self.gpu_memory)} GiB GPU{'s' if self.gpus > 1 else ''}"
        lines = [head, f"{self.setup}; on {where}", ""]
        width = max(len(r.component) for r in self.rows) + 2
        lines.append(f"{'per GPU (GiB)':{width}s}{'rollouts':>10s}{'update':>10s}  how")
        for r in self.rows:
            lines.append(f"{r.component:{width}s}{_cell(r.rollouts)}{_cell(r.update)}  {r.how}")
        lines.append(f"{'total':{width}s}{_cell(self.rollouts, True)}{_cell(self.update, True)}")
        verdict = "fits" if self.fits else "DOES NOT FIT"
        lines.append(
            f"{verdict}: peak {_gib(self.peak)} GiB of {_gib(self.gpu_memory)} GiB "
            f"({_gib(self.gpu_memory - self.peak)} GiB to spare)"
            if self.fits
            else f"{verdict}: peak {_gib(self.peak)} GiB, over the GPU's {_gib(self.gpu_memory)} GiB "
            f"by {_gib(self.peak - self.gpu_memory)} GiB"
        )
        lines.append(f"checkpoint on disk: {self.checkpoint_bytes / 1e9:.1f} GB each ({self.checkpoint_note})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.0f} M"


def _gib(n: int) -> str:
    return f"{n / GIB:.1f}"


def _cell(n: int, total: bool = False) -> str:
    return f"{(_gib(n) if n or total else '-'):>10s}"


def tokens_per_microbatch(config: RunConfig) -> int:
    """The padded tokens of the largest micro-batch: the budget, or one episode longer than it
    (microbatches.pack_microbatches lets a longer sequence ride alone)."""
    return max(config.grpo.token_budget, config.rollout.max_total_tokens)


def activation_bytes_per_token_layer(shape: ModelShape, compute: int) -> int:
    """What one decoder layer keeps for backward per token (HF Llama/Qwen2 with sdpa and a padding
    mask, so K and V are repeated to every head): its input, the attention's q, k, v, output and
    o_proj input (6 x hidden), the MLP's gate, activation, up and product (4 x intermediate), each in
    the compute dtype, plus the two RMSNorms' fp32 upcasts (4 x hidden x 4 bytes under bf16, two
    fp32 tensors otherwise)."""
    h, i = shape.hidden, shape.intermediate
    norms = 16 * h if compute < 4 else 8 * h
    # 9 x hidden: input, normed input, q, k, v, attention out, o_proj in, residual, normed residual.
    return compute * (9 * h + 4 * i) + norms


def plan(
    config: RunConfig,
    *,
    gpus: int | None = None,
    gpu_memory: int | str | None = None,
    model_config: str | os.PathLike[str] | None = None,
) -> MemoryPlan:
    """The plan of `config` on `gpus` GPUs of `gpu_memory` each (bytes, or a size such as "80GiB";
    default: its hardware section)."""
    hardware = config.hardware
    if gpus is None or gpu_memory is None:
        if hardware is None:
            raise PlanError(
                "the config names no hardware (hardware: {gpus: N, gpu_memory: 80GiB}): pass --gpus and --gpu-memory"
            )
        gpus = hardware.gpus if gpus is None else gpus
        gpu_memory = hardware.gpu_memory_bytes if gpu_memory is None else gpu_memory
    # A string is a size with its unit (80GiB); a number is bytes.
    memory = parse_memory(gpu_memory) if isinstance(gpu_memory, str) else int(gpu_memory)
    if gpus < 1:
        raise PlanError("gpus must be >= 1")
    shape = model_shape(config.model.name, model_config)
    g = config.grpo
    precision = g.precision if g.precision != "auto" else "bf16-mixed"  # auto on CUDA
    b = PRECISION_BYTES[precision]
    n = gpus
    sharded = n > 1
    offload = sharded and g.cpu_offload
    lora = g.lora.rank > 0
    p = shape.params
    adapters = shape.lora_params(g.lora.rank, g.lora.target_modules)
    trained = adapters if lora else p
    rows: list[Row] = []
    on_gpu = 0 if offload else 1
    share = f" / {n} GPUs" if sharded else ""

    # Weights. LoRA's frozen base is loaded in the trained dtype too (grpo.GRPOUpdater).
    weights = (p + adapters) * b["weights"] if lora else p * b["weights"]
    what = f"{_count(p)} x {b['weights']} B" + (f" + adapters {_count(adapters)} x {b['weights']} B" if lora else "")
    rows.append(Row(f"weights ({_dtype(b['weights'])})", on_gpu * weights // n, on_gpu * weights // n, what + share))
    opt = trained * b["optimizer"]
    opt_how = f"{_count(trained)} x {b['optimizer']} B" + (" (stochastic rounding)" if precision == "bf16" else "")
    rows.append(Row("AdamW moments", on_gpu * opt // n, on_gpu * opt // n, opt_how + share))
    grads = trained * b["grads"]
    rows.append(Row("gradients", 0, on_gpu * grads // n, f"{_count(trained)} x {b['grads']} B{share}"))
    if g.beta != 0.0 and not lora:
        ref = p * b["reference"]
        rows.append(Row(f"reference model ({_dtype(b['reference'])})", ref // n, ref // n, f"beta {g.beta}{share}"))
    elif g.beta != 0.0:
        rows.append(Row("reference model", 0, 0, "LoRA: the base with adapters off"))

    c = b["compute"]
    if sharded:
        # FSDP2: the root (embeddings, LM head) stays gathered through forward and backward, two
        # decoder layers are gathered at a time (one prefetched), and their unsharded gradients wait
        # for the reduce-scatter; a sharded reference gathers the same way.
        root_grad = 0 if lora else shape.root_params * c
        layer_grad = 0 if lora else shape.layer_params * c
        gathered = shape.root_params * c + root_grad + 2 * shape.layer_params * c + layer_grad
        if g.beta != 0.0 and not lora:
            gathered += (shape.root_params + 2 * shape.layer_params) * b["reference"]
        rows.append(Row("FSDP2 gathered layers", 0, gathered, "root + 2 decoder layers unsharded, their gradients"))
    elif precision == "bf16-mixed" and not lora:
        # torch.autocast caches the bf16 cast of every trained weight until the forward ends; without
        # gradient checkpointing backward keeps them beside the gradients. With it, backward re-casts
        # one layer at a time, and the cache (2 B a weight) is gone before the gradients (4 B) exist.
        casts = 0 if g.gradient_checkpointing else trained * 2
        how = f"{_count(trained)} x 2 B" + (", forward only: below the gradients' peak" if not casts else "")
        rows.append(Row("autocast bf16 weight copies", 0, casts, how))

    tokens = tokens_per_microbatch(config)
    per_layer = activation_bytes_per_token_layer(shape, c)
    backward_extra = tokens * c * (3 * shape.hidden + 2 * shape.intermediate)
    if g.gradient_checkpointing:
        acts = shape.layers * tokens * shape.hidden * c + tokens * per_layer + backward_extra
        act_how = f"{tokens} tokens: {shape.layers} layer inputs + 1 layer recomputed"
    else:
        acts = shape.layers * tokens * per_layer + backward_extra
        act_how = f"{tokens} tokens x {shape.layers} layers x {per_layer / 1024:.0f} KiB"
    rows.append(Row(f"activations ({'checkpointed' if g.gradient_checkpointing else 'all layers'})", 0, acts, act_how))
    # grpo_loss.selected_logprobs: the LM head's logits and their gradient in the compute dtype, and fp32
    # chunks of them; at most one logit row per token of the micro-batch.
    logits = 2 * tokens * shape.vocab * c + 3 * LOGSOFTMAX_CHUNK_BYTES
    rows.append(Row("logits", 0, logits, f"{tokens} x {shape.vocab} x {c} B, and their gradient"))

    backend = config.model.backend
    if backend == "vllm":
        awake = int(config.vllm.gpu_memory_utilization * memory)
        asleep = VLLM_ASLEEP if config.vllm.enable_sleep_mode else awake
        how = f"gpu_memory_utilization {config.vllm.gpu_memory_utilization}" + (
            ", asleep during the update" if config.vllm.enable_sleep_mode else ", held during the update"
        )
        rows.append(Row("vLLM (in process)", awake, asleep, how))
    elif backend == "openai":
        rows.append(Row("vLLM", 0, 0, "a server on GPUs of its own"))
    rows.append(Row("CUDA context", CUDA_CONTEXT, CUDA_CONTEXT, "estimate"))

    notes = []
    if backend == "hf":
        notes.append("model.backend hf generates with the training model: its KV cache is not counted")
    if offload:
        notes.append("cpu_offload: weights, gradients and AdamW moments live in host RAM")
    if sharded and lora:
        notes.append("LoRA under torchrun trains, but its checkpoints are not supported yet (grpo.py)")
    ckpt_weights = (adapters if lora else p) * b["weights"]
    ckpt_opt = 0 if config.checkpoint.weights_only else trained * b["optimizer"]
    kept = config.checkpoint.keep_last + 1
    every = f"every {config.checkpoint.every} steps" if config.checkpoint.every else "at the end of each stage"
    ckpt_note = (
        f"{'adapter' if lora else 'weights'} {ckpt_weights / 1e9:.1f} + AdamW {ckpt_opt / 1e9:.1f}; {every}, "
        f"up to {kept} at once: {kept * (ckpt_weights + ckpt_opt) / 1e9:.1f} GB"
    )
    mode = f"LoRA rank {g.lora.rank}" if lora else "full fine-tuning"
    setup = (
        f"{mode}, {precision}, {tokens} tokens per micro-batch, beta {g.beta}, "
        f"{'torchrun FSDP2' if sharded else 'one process'}, model.backend {backend}"
    )
    return MemoryPlan(
        shape=shape,
        gpus=n,
        gpu_memory=memory,
        setup=setup,
        rows=rows,
        checkpoint_bytes=ckpt_weights + ckpt_opt,
        checkpoint_note=ckpt_note,
        notes=notes,
    )


def _dtype(nbytes: int) -> str:
    return {2: "bf16", 4: "fp32"}[nbytes]


def alternatives(
    config: RunConfig, gpus: int, gpu_memory: int, model_config: str | os.PathLike[str] | None = None
) -> list[str]:
    """Changes of the config that fit these GPUs (or, for sharding, a node of them), in words."""
    from copy import deepcopy

    found = []
    candidates: list[tuple[str, RunConfig, int]] = []
    lora = deepcopy(config)
    lora.grpo.lora = replace(lora.grpo.lora, rank=64)
    candidates.append(("grpo.lora: {rank: 64} (LoRA; about 10x the full fine-tuning learning rate)", lora, gpus))
    if config.grpo.precision != "bf16":
        pure = deepcopy(config)
        pure.grpo.precision = "bf16"
        candidates.append(("grpo.precision: bf16 (bf16 weights and AdamW, stochastic rounding)", pure, gpus))
    for count in (2, 4, 8):
        if count <= gpus:
            continue
        server = deepcopy(config)
        server.model.backend = "openai"
        candidates.append(
            (
                f"torchrun --nproc_per_node {count} (FSDP2) with model.backend openai, a vLLM server on "
                "GPUs of its own (weight_sync: nccl)",
                server,
                count,
            )
        )
    sharding_fits = False
    for words, candidate, count in candidates:
        if sharding_fits and count > gpus:
            continue  # the fewest GPUs that fit is enough to name
        if plan(candidate, gpus=count, gpu_memory=gpu_memory, model_config=model_config).fits:
            found.append(words)
            sharding_fits = count > gpus
    return found


def check(
    config: RunConfig,
    *,
    gpus: int | None = None,
    gpu_memory: int | str | None = None,
    model_config: str | os.PathLike[str] | None = None,
    what: str = "the config",
) -> MemoryPlan:
    """The plan, or PlanError (with the table and the changes that would fit) when it does not fit."""
    result = plan(config, gpus=gpus, gpu_memory=gpu_memory, model_config=model_config)
    if result.fits:
        return result
    options = alternatives(config, result.gpus, result.gpu_memory, model_config)
    fix = ("; it would fit with " + "; or ".join(options)) if options else ""
    raise PlanError(
        f"{what} needs {_gib(result.peak)} GiB on a GPU, over the {_gib(result.gpu_memory)} GiB of "
        f"{result.gpus} GPU{'s' if result.gpus > 1 else ''}{fix}\n{result.table()}"
    )


def check_before_training(config: RunConfig, *, what: str = "the config") -> list[MemoryPlan]:
    """`gymwire train`'s check, before anything loads: against the config's hardware section, and
    against the GPUs this process sees (torchrun's world size, this device's memory) on CUDA."""
    plans = []
    if config.hardware is not None:
        plans.append(check(config, what=what))
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if cuda:
        total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        world = int(os.environ.get("WORLD_SIZE", "1"))
        plans.append(check(config, gpus=world, gpu_memory=total, what=f"{what} on this machine's GPUs"))
    return plans


__all__ = ["SHAPES", "MemoryPlan", "ModelShape", "PlanError", "check", "check_before_training", "model_shape", "plan"]

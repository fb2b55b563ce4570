"""Data-parallel policy updates over several GPUs (or CPU processes) with PyTorch's FSDP2.

A run is launched by `torchrun --nproc_per_node N ...`; every rank builds the same model, calls
`shard_model` (FSDP2's `fully_shard` per decoder layer, then the root), and creates its optimizer
over the sharded parameters. Rank 0 alone runs rollouts and evaluations; `broadcast_object` hands
every rank the step's episodes, every rank packs the same micro-batches from them and `accumulate`
runs this rank's share. Gradients are reduce-scattered with a plain SUM (see `shard_model`), so the
step's gradient equals one process computing every micro-batch. Nothing here is a communication
layer of its own: process groups, device meshes, sharding, state dicts and gradient clipping are
torch.distributed's.

The same code runs on CUDA (nccl) and on CPU (gloo); without torchrun (no WORLD_SIZE, or 1) every
function degrades to the single-process behaviour, so the updater has one code path.

Contract for the updater, per step (every rank, same order):
1. `episodes = dist.broadcast_object(episodes if dist.is_main else None)`.
2. Build micro-batches from them deterministically (identical list on every rank).
3. `optimizer.zero_grad(set_to_none=True)`; `sums = accumulate(microbatches, loss_fn, dist)`:
   `loss_fn(mb) -> (loss, stats)` forwards one micro-batch (reference log-probs included) and returns
   its weighted loss (a share of the step's loss: the weights over all micro-batches sum to the step)
   and float statistics with the same keys every call. `sums` are the step's totals on every rank.
   No loss scaling: FSDP's reduction is a sum.
4. `clip_grad_norm_(params, max_norm)` on every rank, then `optimizer.step()` on every rank.
5. Weight sync / export: every rank iterates `full_state_items(model)` to the end; rank 0 uses them.
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as torch_dist

T = TypeVar("T")
MB = TypeVar("MB")

# Rank 0 runs rollouts and evaluations (minutes to hours) while the other ranks wait inside a
# collective; the default 10 (nccl) / 30 (gloo) minutes would kill a healthy run.
DEFAULT_TIMEOUT = timedelta(hours=6)

PRECISION_DTYPES = {"fp32": torch.float32, "bf16-mixed": torch.float32, "bf16": torch.bfloat16}


# ----------------------------------------------------------------------------------------------
# Process group
# ----------------------------------------------------------------------------------------------


@dataclass
class Distributed:
    """Where this process sits: rank, world size and its device; `mesh` is None in a single process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    mesh: Any | None = None  # torch.distributed.device_mesh.DeviceMesh over all ranks

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()

    def close(self) -> None:
        """Destroy the process group (a no-op in a single process)."""
        if self.enabled and torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def default_device_type() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def init_from_env(device_type: str | None = None, *, timeout: timedelta = DEFAULT_TIMEOUT) -> Distributed:
    """The context of this process from torchrun's RANK / WORLD_SIZE / LOCAL_RANK.

    With WORLD_SIZE unset or 1 nothing is initialised: a single-process context. Otherwise the
    default process group is created (nccl, plus gloo for CPU tensors, on CUDA; gloo on CPU), the
    CUDA device is chosen from LOCAL_RANK, and a 1-D device mesh over all ranks is built for
    `fully_shard`. An existing default group (initialised by the caller) is reused.
    """
    device_type = device_type or default_device_type()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        device = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
        torch.cuda.set_device(device)
    else:
        device = torch.device(device_type)
    if world_size <= 1:
        return Distributed(device=device)

    from torch.distributed.device_mesh import init_device_mesh

    if not torch_dist.is_initialized():
        # On CUDA, gloo serves the collectives on CPU tensors: with CPU offload the sharded
        # gradients, and so the partial norms of clip_grad_norm_, live in host memory.
        backend = "cuda:nccl,cpu:gloo" if device_type == "cuda" else "gloo"
        # device_id binds nccl's communicator to this GPU at once (no guessing from the first collective).
        torch_dist.init_process_group(backend, timeout=timeout, device_id=device if device_type == "cuda" else None)
    rank = torch_dist.get_rank()
    mesh = init_device_mesh(device_type, (torch_dist.get_world_size(),))
    return Distributed(
        rank=rank, world_size=torch_dist.get_world_size(), local_rank=local_rank, device=device, mesh=mesh
    )


def broadcast_object(obj: T, dist: Distributed, src: int = 0) -> T:
    """Rank `src`'s Python object on every rank (pickled; others pass anything, e.g. None)."""
    if not dist.enabled:
        return obj
    box = [obj if dist.rank == src else None]
    torch_dist.broadcast_object_list(box, src=src, device=dist.device)
    return box[0]  # type: ignore[return-value]


def all_reduce_sums(sums: dict[str, float], dist: Distributed) -> dict[str, float]:
    """Per-key sums over ranks. Every rank must pass the same keys."""
    if not dist.enabled:
        return dict(sums)
    keys = sorted(sums)
    values = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=dist.device)
    torch_dist.all_reduce(values, op=torch_dist.ReduceOp.SUM)
    return dict(zip(keys, values.tolist(), strict=True))


# ----------------------------------------------------------------------------------------------
# Sharding
# ----------------------------------------------------------------------------------------------


def _fsdp() -> Any:
    from torch.distributed import fsdp

    return fsdp


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules to shard one by one: the classes a Hugging Face model lists in `_no_split_modules`
    (its decoder layers), found anywhere inside wrappers such as a PEFT model."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    if not names:
        raise ValueError(f"{type(model).__name__} names no `_no_split_modules`: cannot find its decoder layers")
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"no module of the classes {sorted(names)} in {type(model).__name__}")
    return layers


def mixed_precision_policy(precision: str) -> Any:
    """fp32: none. bf16-mixed: bf16 compute over fp32 master weights. bf16: bf16 weights; in both
    bf16 cases gradients are summed over ranks in fp32 (a sum of N bf16 values loses bits)."""
    fsdp = _fsdp()
    if precision == "fp32":
        return fsdp.MixedPrecisionPolicy()
    if precision == "bf16-mixed":
        return fsdp.MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    if precision == "bf16":
        return fsdp.MixedPrecisionPolicy(reduce_dtype=torch.float32)
    raise ValueError(f"precision must be fp32, bf16-mixed or bf16 (resolve 'auto' first), got {precision!r}")


def shard_model(
    model: torch.nn.Module,
    dist: Distributed,
    *,
    precision: str = "fp32",
    cpu_offload: bool = False,
    reshard_after_forward: bool = True,
) -> torch.nn.Module:
    """FSDP2 in place: each decoder layer, then the root (embeddings, final norm, LM head).

    Call it on every rank after any PEFT wrapping and gradient-checkpointing setup, and create the
    optimizer afterwards (its parameters are the sharded DTensors). Tied embeddings need nothing
    special: the shared parameter is not inside a decoder layer, so it lands once in the root's
    group. In a single process the model is only cast/moved, so one updater code path serves both.

    Gradients are reduced with a plain SUM (divide factor 1): the micro-batch weights already sum to
    the step's loss, so a sum over ranks is exactly the one-process gradient. Forcing sum-only
    collectives also keeps gloo working (it rejects PREMUL_SUM, which a divide factor would use).
    """
    dtype = PRECISION_DTYPES.get(precision)
    if dtype is None:
        raise ValueError(f"precision must be fp32, bf16-mixed or bf16 (resolve 'auto' first), got {precision!r}")
    # FSDP2 wants one dtype per parameter group; bf16-mixed keeps fp32 master weights.
    model.to(dtype=dtype)
    if not dist.enabled:
        return model.to(dist.device)
    fsdp = _fsdp()
    kwargs: dict[str, Any] = {"mesh": dist.mesh, "mp_policy": mixed_precision_policy(precision)}
    # On a CPU device the parameters already live in CPU RAM: offloading would only add copies.
    if cpu_offload and dist.device.type != "cpu":
        kwargs["offload_policy"] = fsdp.CPUOffloadPolicy()
    else:
        model.to(dist.device)
    for layer in decoder_layers(model):
        fsdp.fully_shard(layer, reshard_after_forward=reshard_after_forward, **kwargs)
    # The root's parameters are needed first in backward: FSDP's own default keeps them gathered.
    fsdp.fully_shard(model, reshard_after_forward=False, **kwargs)
    for module in model.modules():
        if isinstance(module, fsdp.FSDPModule):  # the setters act on one module's group, not recursively
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    return model


# ----------------------------------------------------------------------------------------------
# Micro-batches and gradient accumulation
# ----------------------------------------------------------------------------------------------


def passes_per_rank(n: int, world_size: int) -> int:
    """Forward/backward passes every rank runs in a step of n micro-batches (the busiest rank's)."""
    return math.ceil(n / world_size) if n > 0 else 0


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """The micro-batches rank `rank` computes: round-robin, so with the packer's longest-first order
    every rank gets a similar number of tokens."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size}")
    return list(range(rank, n, world_size))


def pass_plan(n: int, rank: int, world_size: int) -> list[tuple[int, float]]:
    """(micro-batch index, loss scale) for each pass of this rank: its own micro-batches at scale 1,
    then, up to the busiest rank's count, its last one (or the step's last, the smallest under the
    packer's longest-first order) again at scale 0."""
    mine = shard_indices(n, rank, world_size)
    idle = passes_per_rank(n, world_size) - len(mine)
    filler = mine[-1] if mine else n - 1
    return [(i, 1.0) for i in mine] + [(filler, 0.0)] * idle


def accumulate(
    microbatches: Sequence[MB],
    loss_fn: Callable[[MB], tuple[torch.Tensor, dict[str, float]]],
    dist: Distributed,
    *,
    backward: bool = True,
) -> dict[str, float]:
    """Run this rank's share of the micro-batches (backward on each when `backward`) and return the
    step's summed statistics, identical on every rank; `loss` is added as the sum of the losses.

    FSDP gathers parameters in every forward and reduce-scatters gradients in every backward, so all
    ranks must run the same number of passes. A rank with fewer micro-batches runs extra passes on
    its last micro-batch (or the step's smallest) with the loss multiplied by zero: padding with an
    empty pass would skip the collectives inside `loss_fn` (a sharded reference model's forward, for
    one), while a real pass at weight zero takes part in all of them and adds exactly nothing.
    """
    sums: dict[str, float] = defaultdict(float)
    grad_context = torch.enable_grad() if backward else torch.no_grad()
    with grad_context:
        for index, scale in pass_plan(len(microbatches), dist.rank, dist.world_size):
            loss, stats = loss_fn(microbatches[index])
            if scale != 1.0:
                loss = loss * scale
            if backward:
                loss.backward()
            sums["loss"] += float(loss.detach()) * scale
            for key, value in stats.items():
                if key != "loss":
                    sums[key] += float(value) * scale
    return all_reduce_sums(sums, dist)


def clip_grad_norm_(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> float:
    """torch's clip over sharded (DTensor) gradients: the norm is of the full gradient, every rank
    gets the same value and scales its own shard. Returns the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(list(parameters), max_norm)
    full = getattr(norm, "full_tensor", None)
    return float(full() if full is not None else norm)


# ----------------------------------------------------------------------------------------------
# Full weights out (weight sync, export) and full-state checkpoints
# ----------------------------------------------------------------------------------------------


def full_tensor(tensor: torch.Tensor, dist: Distributed) -> torch.Tensor:
    """The whole tensor from a DTensor shard (a collective: every rank must call it)."""
    from torch.distributed.tensor import DTensor

    if not isinstance(tensor, DTensor):
        return tensor.detach()
    if tensor.device.type != dist.device.type:  # a CPU-offloaded shard travels over the GPU backend
        tensor = tensor.to(dist.device)
    assert isinstance(tensor, DTensor)
    return tensor.full_tensor().detach()


def hf_name(name: str) -> str:
    """A PEFT model's parameter name as the underlying Hugging Face model names it."""
    return name.removeprefix("base_model.model.").replace(".base_layer.", ".")


def _lora_layer(model: torch.nn.Module, base_weight_name: str) -> Any | None:
    """The PEFT LoRA layer owning `<prefix>.base_layer.weight`, or None."""
    if ".base_layer." not in base_weight_name:
        return None
    owner = model.get_submodule(base_weight_name.split(".base_layer.")[0])
    return owner if hasattr(owner, "lora_A") else None


def _lora_delta(layer: Any, tensors: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """scaling * B @ A summed over the active adapters: what PEFT's merge adds to a Linear's weight."""
    delta: torch.Tensor | None = None
    for adapter in layer.active_adapters:
        if adapter not in layer.lora_A:
            continue
        if getattr(layer, "use_dora", {}).get(adapter, False):
            raise NotImplementedError(f"{prefix}: only plain LoRA (not DoRA) can be merged here")
        a = tensors[f"{prefix}.lora_A.{adapter}.weight"].float()
        b = tensors[f"{prefix}.lora_B.{adapter}.weight"].float()
        term = (b @ a) * layer.scaling[adapter]
        if getattr(layer, "fan_in_fan_out", False):  # Conv1D (GPT-2) stores its weight as (in, out)
            term = term.T
        delta = term if delta is None else delta + term
    if delta is None:
        raise ValueError(f"{prefix}: no active LoRA adapter")
    return delta


def full_state_items(model: torch.nn.Module, dist: Distributed) -> Iterator[tuple[str, torch.Tensor]]:
    """(Hugging Face name, full tensor) for every weight, gathered one tensor at a time.

    Every rank must exhaust this iterator (each tensor is a collective); every rank receives the
    tensors and non-main ranks simply drop them, so memory stays one tensor (one LoRA layer) above
    the shards. LoRA adapters are merged into their base weights (vLLM and HF folders want plain
    weights) and PEFT's prefixes dropped. A tied weight is yielded once, under its first name
    (`model.embed_tokens.weight`), as `save_pretrained` writes it.
    """
    seen: set[int] = set()
    state = model.state_dict(keep_vars=True)  # the parameters themselves: a tied one shows as one object
    pending: dict[str, torch.Tensor] = {}  # one LoRA layer's gathered pieces
    pending_layer: tuple[str, Any] | None = None
    for name, tensor in state.items():
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        layer = _lora_layer(model, name) if name.endswith(".base_layer.weight") else None
        if pending_layer is not None and not name.startswith(pending_layer[0] + "."):
            yield from _flush_lora(pending_layer, pending)
            pending, pending_layer = {}, None
        if layer is not None:
            pending_layer = (name.removesuffix(".base_layer.weight"), layer)
        if pending_layer is not None:
            pending[name] = full_tensor(tensor, dist)
            continue
        if "lora_" in name:  # e.g. a LoRA embedding: dropping it would sync weights without the training
            raise NotImplementedError(f"{name}: only LoRA on Linear layers (base_layer + lora_A/B) can be merged")
        yield hf_name(name), full_tensor(tensor, dist)
    if pending_layer is not None:
        yield from _flush_lora(pending_layer, pending)


def _flush_lora(pending_layer: tuple[str, Any], tensors: dict[str, torch.Tensor]) -> Iterator[tuple[str, torch.Tensor]]:
    prefix, layer = pending_layer
    base = tensors[f"{prefix}.base_layer.weight"]
    merged = (base.float() + _lora_delta(layer, tensors, prefix)).to(base.dtype)
    yield hf_name(f"{prefix}.weight"), merged
    for name, tensor in tensors.items():
        if "lora_" not in name and not name.endswith(".base_layer.weight"):
            yield hf_name(name), tensor  # e.g. the base layer's bias


def _state_dict_options(*, broadcast_from_rank0: bool = False, strict: bool = True) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(
        full_state_dict=True, cpu_offload=True, broadcast_from_rank0=broadcast_from_rank0, strict=strict
    )


def full_checkpoint_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole model and optimizer state on CPU, on rank 0 (other ranks get empty dicts; all must
    call). Optimizer state is keyed by parameter name, not position, so a checkpoint written by N
    ranks loads in M ranks or in one process."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    options = _state_dict_options()
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def load_full_checkpoint_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    model_state: dict[str, Any],
    optimizer_state: dict[str, Any] | None,
    dist: Distributed,
    *,
    strict: bool = True,
) -> None:
    """Load `full_checkpoint_state`'s dicts: rank 0 passes them, the others pass empty dicts and
    receive their shards by broadcast (one tensor at a time). All ranks must call."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    options = _state_dict_options(broadcast_from_rank0=dist.enabled, strict=strict)
    # torch replaces the dicts' entries with this rank's shards: copy the containers (not the
    # tensors) so that the caller's full state stays full.
    set_model_state_dict(model, dict(model_state), options=options)
    if optimizer is not None and optimizer_state is not None:
        optimizer_state = {
            key: (dict(value) if isinstance(value, dict) else value) for key, value in optimizer_state.items()
        }
        if isinstance(optimizer_state.get("state"), dict):
            optimizer_state["state"] = {k: dict(v) for k, v in optimizer_state["state"].items()}
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)

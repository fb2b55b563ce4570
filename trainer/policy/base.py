"""The policy interface every rollout talks to, and the micro-batcher the local backends share.

A rollout is one coroutine per episode, so generation requests arrive one by one from many
coroutines. A local model is far more efficient on a batch than on one prompt at a time, so each
local backend gathers the requests that arrive within a short window (or until a maximum batch)
and runs them as one forward pass in a worker thread; the event loop stays free for the
environment RPCs meanwhile. Requests that arrive while a batch runs form the next batch at once.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from ..types import Generation, SamplingParams
from .admission import KVAdmission

Request = TypeVar("Request")
Result = TypeVar("Result")

# What `update_weights` accepts: a model object (e.g. the live training model), a state dict, an
# iterable of (name, tensor) pairs in Hugging Face naming (full tensors, LoRA merged: what the
# trainer streams), or a folder saved with save_pretrained.
WeightsSource = Any

BUCKET_BYTES = 1 << 30  # tensors handed to an engine per call when weights are streamed


class ContextFull(ValueError):
    """The prompt does not fit the policy's context (max_model_len): the episode cannot go on."""


class Policy(ABC):
    """Something that samples completions of token prompts.

    `tokenizer` is the tokenizer the prompts were built with; `stop_token_ids` are the tokens a
    completion stops on (eos and the template's end-of-turn token). `generate` may be awaited by
    many coroutines at once; backends batch them.

    What a training run may ask of a backend is said by the attributes below, so the run asks the
    policy (trainer/train.py), never the backend's name.
    """

    name: str
    tokenizer: Any
    stop_token_ids: list[int]
    max_model_len: int | None = None  # prompt + completion tokens the engine holds; None: no limit
    # Generates with a model object in this process: a training run builds it with `for_live_model`
    # over the updater's own model, and closes the copy it loaded for the base evaluation.
    samples_live_model: ClassVar[bool] = False
    # Holds weights of its own (an engine, a server): after each update they are streamed in with
    # `update_weights` and checked against the trainer's log-probs. False: it samples the live weights.
    needs_weight_sync: bool = True
    # Why it cannot sample beside an update sharded over torchrun's ranks; None: it can.
    torchrun_conflict: ClassVar[str | None] = None
    # With `rollout.kv_admission` (the default), episodes in flight are limited to what the engine's KV cache holds
    # (policy/admission.py); None: no limit (no cache of a known size, or one shared with other clients).
    admission: KVAdmission | None = None

    @abstractmethod
    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        """Sample one completion of `prompt_ids`. Raises ContextFull when the prompt cannot fit."""

    @abstractmethod
    def update_weights(self, source: WeightsSource) -> None:
        """Make later generations use new weights (after an optimizer step).

        `source`: a model object, a state dict, an iterable of (name, tensor) pairs in Hugging
        Face naming (consumed once), or a folder holding safetensors.
        """

    @classmethod
    def for_live_model(cls, model: Any, tokenizer: Any, *, max_batch: int) -> Policy:
        """A policy that samples with `model`, the module being trained (`samples_live_model`)."""
        raise TypeError(f"{cls.__name__} cannot sample with a live model object")

    def score(self, token_ids: list[int], temperature: float = 1.0) -> list[float]:
        """log p(token_t | tokens_<t) at `temperature` for every position (position 0: 0.0), as
        the engine computes it: compared with the trainer's own log-probs after a weight sync."""
        raise NotImplementedError(f"{type(self).__name__} cannot score sequences")

    def sleep(self) -> None:  # noqa: B027 - optional hook; only engines that share a GPU free memory
        """Free accelerator memory (weights, KV cache) while the trainer updates; no-op by default."""

    def wake_up(self) -> None:  # noqa: B027 - optional hook, see sleep
        """Undo `sleep` (update_weights and generate also wake the engine); no-op by default."""

    def close(self) -> None:  # noqa: B027 - optional hook; most backends hold nothing to free
        """Free the backend's resources."""

    def __enter__(self) -> Policy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def check_request(prompt_ids: Sequence[int], params: SamplingParams) -> None:
        """Reject bad requests with a clear error before they reach an engine."""
        if not prompt_ids:
            raise ValueError("empty prompt")
        if params.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {params.max_new_tokens}")
        if params.temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {params.temperature}")
        if not 0 < params.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {params.top_p}")

    def make_generation(self, token_ids: Sequence[int], logprobs: Sequence[float], limit: int) -> Generation:
        """A Generation cut at the first stop token (kept); finish_reason from how it ended."""
        ids, lps = list(token_ids), [float(x) for x in logprobs]
        stops = set(self.stop_token_ids)
        for i, tok in enumerate(ids):
            if tok in stops:
                ids, lps = ids[: i + 1], lps[: i + 1]
                break
        ids, lps = ids[:limit], lps[:limit]
        reason: Literal["stop", "length"] = "stop" if ids and ids[-1] in stops else "length"
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return Generation(token_ids=ids, logprobs=lps, text=text, finish_reason=reason)


@dataclass
class _Pending(Generic[Request, Result]):
    request: Request
    future: asyncio.Future[Result]


class MicroBatcher(Generic[Request, Result]):
    """Collects concurrent requests into batches for one `run_batch` call at a time.

    A batch starts with the first waiting request and takes every request that arrives within
    `window_s` of it, up to `max_batch`. There is no other delay: under load the next batch is
    whatever queued while the previous one ran. `run_batch` returns one result per request, in
    order; if it raises, every request of that batch gets the exception. With `overlap`, a batch
    does not wait for the previous one to finish (an engine that batches continuously inside takes
    new requests while it runs others).

    Bound to the event loop of its first use; used from a new loop (e.g. another asyncio.run), it
    starts afresh there.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Request]], Awaitable[list[Result]]],
        *,
        max_batch: int = 8,
        window_s: float = 0.005,
        overlap: bool = False,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.window_s = window_s
        self.overlap = overlap
        self._running: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Pending[Request, Result]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.batch_sizes: list[int] = []  # observed sizes, for tests and benchmarks
        self.busy_seconds = 0.0  # time spent inside run_batch: the backend's generation time

    async def submit(self, request: Request) -> Result:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._work(self._queue))
        assert self._queue is not None
        pending = _Pending(request, loop.create_future())
        self._queue.put_nowait(pending)
        return await pending.future

    async def _work(self, queue: asyncio.Queue[_Pending[Request, Result]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.window_s
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            batch = [p for p in batch if not p.future.done()]  # drop requests cancelled meanwhile
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            if self.overlap:
                task = loop.create_task(self._deliver(batch))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            else:
                await self._deliver(batch)

    async def _deliver(self, batch: list[_Pending[Request, Result]]) -> None:
        started = asyncio.get_running_loop().time()
        try:
            results = await self._run_batch([p.request for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} requests")
        except Exception as exc:  # noqa: BLE001 - delivered to every waiting caller
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        finally:
            self.busy_seconds += asyncio.get_running_loop().time() - started
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)

    def close(self) -> None:
        for task in [self._worker, *self._running]:
            if task is None or task.done():
                continue
            loop = task.get_loop()
            if loop.is_closed():
                continue
            if loop.is_running():
                loop.call_soon_threadsafe(task.cancel)
            else:
                task.cancel()
        self._worker = None


class BatchedPolicy(Policy):
    """A local backend: concurrent `generate` calls are gathered into batches by a MicroBatcher."""

    _batcher: MicroBatcher

    def _start_batching(self, max_batch: int, window_s: float, overlap: bool = False) -> None:
        self._batcher = MicroBatcher(self._run_batch, max_batch=max_batch, window_s=window_s, overlap=overlap)

    @abstractmethod
    async def _run_batch(self, batch: list[tuple[list[int], SamplingParams]]) -> list[Generation]:
        """Generate for one gathered batch of (prompt ids, sampling params)."""

    @property
    def batch_sizes(self) -> list[int]:
        return self._batcher.batch_sizes

    @property
    def busy_seconds(self) -> float:
        """Wall time spent generating (inside batches), for the rollout benchmark."""
        return self._batcher.busy_seconds


def shm_dir() -> Path:
    """Where to write weights handed to an inference engine: RAM-backed when available."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(os.environ.get("TMPDIR", "/tmp"))


def is_folder(source: WeightsSource) -> bool:
    return isinstance(source, str | os.PathLike)


def named_tensors(source: WeightsSource) -> Iterator[tuple[str, Any]]:
    """(name, tensor) pairs of a model object, a state dict or an iterable of pairs.

    Tied tensors of a model or state dict (lm_head sharing the embedding's storage) come under
    each name, the later ones as copies. A stream is passed through as it is (its producer may
    reuse one buffer, so storage says nothing there).
    """
    if is_folder(source):
        raise TypeError("a folder is not a stream of tensors")
    if hasattr(source, "state_dict") and callable(source.state_dict):
        source = source.state_dict()
    if isinstance(source, Mapping):
        yield from _untied(source.items())
        return
    if not isinstance(source, Iterable):
        raise TypeError(f"cannot take weights from {type(source).__name__}")
    for item in source:
        if not (isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str)):
            raise TypeError(f"expected (name, tensor) pairs, got {type(item).__name__}")
        yield item[0], item[1].detach()


def _untied(pairs: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """Every name once; a tensor sharing storage with an earlier one (a tied lm_head) is copied:
    engines must receive it under its own name (vLLM's reload unties them), and safetensors
    refuses shared storage."""
    seen: set[tuple[str, int, int]] = set()
    for name, tensor in pairs:
        ident = (str(tensor.device), tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        shared = tensor.numel() > 0 and ident in seen
        seen.add(ident)
        yield name, tensor.detach().clone() if shared else tensor.detach()


def buckets(pairs: Iterable[tuple[str, Any]], max_bytes: int = BUCKET_BYTES) -> Iterator[list[tuple[str, Any]]]:
    """Consecutive groups of pairs of at most `max_bytes` each (a larger tensor goes alone), so
    that a stream of a 7B model is handed over a bounded amount at a time."""
    bucket: list[tuple[str, Any]] = []
    size = 0
    for name, tensor in pairs:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and size + nbytes > max_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, tensor))
        size += nbytes
    if bucket:
        yield bucket


def save_weights(source: WeightsSource, folder: Path, shard_bytes: int = BUCKET_BYTES) -> None:
    """Write weights as safetensors shards of bounded size into `folder` (a model object, a state
    dict, or a stream of (name, tensor) pairs); an engine's loader reads every shard."""
    from safetensors.torch import save_file  # imported here: base must not need torch

    for i, bucket in enumerate(buckets(named_tensors(source), shard_bytes)):
        # Tensors of one shard are all alive at once: shared storage there means truly tied.
        tensors = {name: tensor.contiguous().cpu() for name, tensor in _untied(bucket)}
        save_file(tensors, str(folder / f"model-{i + 1:05d}.safetensors"))

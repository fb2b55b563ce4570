"""Policy backend on transformers' `generate`: the CPU default, and the one that can sample from
the live training model object itself (so rollouts always use the current weights, no copy).

Sampling is done by our own logits processor (`RowSampler`) rather than generate's sampler:

* each row of a batch has its own temperature, top-p and random generator, so requests with
  different parameters (and per-request seeds, reproducible whatever else is in the batch)
  share one batched forward;
* the sampled token's log-probability is taken from exactly the distribution it was drawn from
  (temperature and top-p applied), without generate's `output_scores`, which would keep a
  batch x steps x vocabulary tensor (8 x 200 x 49152 floats = 315 MB) just to read one entry;
* generate's own warpers (its top_k=50 default among them) are not involved.

The processor returns a one-hot score row, and generate runs greedy, so it emits exactly the
token we drew; it still does the KV cache, left-padding positions and eos handling.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    StoppingCriteria,
    StoppingCriteriaList,
)

from ..model import release_memory, resolve_model
from ..sequence import end_of_turn_ids
from ..types import Generation, SamplingParams
from .base import BatchedPolicy, WeightsSource

log = logging.getLogger(__name__)

# generate() fills any option left as None from the model's own generation_config (e.g. a
# repetition_penalty shipped with the model), which would silently change the sampling
# distribution. These are set to their neutral values explicitly.
_NEUTRAL_OPTIONS: dict[str, Any] = {
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "min_new_tokens": 0,
    "length_penalty": 1.0,
}
# Options without a neutral value; if the model's generation_config sets them they still apply.
_UNNEUTRALISABLE = (
    "sequence_bias",
    "bad_words_ids",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "suppress_tokens",
    "begin_suppress_tokens",
    "exponential_decay_length_penalty",
)


class RowSampler(LogitsProcessor):
    """Draws each row's next token from its own distribution and records its log-probability.

    Temperature 0 means greedy; its recorded logprob is then the temperature-1 log-softmax of the
    chosen token (the greedy distribution itself is a point mass, logprob 0, useless to a trainer).
    """

    def __init__(self, params: list[SamplingParams]) -> None:
        self.temperatures = torch.tensor([p.temperature for p in params], dtype=torch.float32)
        self.top_ps = torch.tensor([p.top_p for p in params], dtype=torch.float32)
        self.generators = []
        for p in params:
            seed = p.seed if p.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
            self.generators.append(torch.Generator().manual_seed(seed))
        self.tokens: list[torch.Tensor] = []  # per step: [batch] sampled ids
        self.logprobs: list[torch.Tensor] = []  # per step: [batch] their logprobs

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.float()
        greedy = self.temperatures <= 0
        temps = torch.where(greedy, torch.ones_like(self.temperatures), self.temperatures).to(logits.device)
        logits = logits / temps[:, None]
        needs_top_p = (self.top_ps < 1.0) & ~greedy
        if bool(needs_top_p.any()):
            logits = _top_p_filter(logits, self.top_ps.to(logits.device), needs_top_p.to(logits.device))
        logp = torch.log_softmax(logits, dim=-1)
        chosen = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
        for row in range(logits.shape[0]):
            if greedy[row]:
                chosen[row] = torch.argmax(logp[row])
            else:
                probs = logp[row].exp().cpu()
                chosen[row] = torch.multinomial(probs, 1, generator=self.generators[row]).item()
        self.tokens.append(chosen.cpu())
        self.logprobs.append(logp.gather(1, chosen[:, None]).squeeze(1).cpu())
        forced = torch.full_like(scores, float("-inf"))
        forced.scatter_(1, chosen[:, None], 0.0)
        return cast(torch.FloatTensor, forced)


def _top_p_filter(logits: torch.Tensor, top_p: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Nucleus filtering per row: keep the smallest set of tokens whose probability reaches top_p."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    # Drop a token when the tokens before it already reach top_p (the first token always stays).
    drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= top_p[:, None]
    drop_sorted &= rows[:, None]
    drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


class RowLimits(StoppingCriteria):
    """Stops each row at its own max_new_tokens (generate's limit is the batch's largest)."""

    def __init__(self, prompt_length: int, limits: list[int]) -> None:
        self.prompt_length = prompt_length
        self.limits = torch.tensor(limits)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self.prompt_length
        return cast(torch.BoolTensor, (generated >= self.limits).to(input_ids.device))


class HFPolicy(BatchedPolicy):
    """transformers generate, batched and off the event loop.

    `model` is a folder, a resolvable name ("smollm2", a hub id in the local cache) or a loaded
    model object; pass the trainer's model object to sample with its live weights.
    """

    samples_live_model = True
    torchrun_conflict = "hf samples with the live training model, which torchrun shards"

    def __init__(
        self,
        model: str | os.PathLike[str] | PreTrainedModel = "smollm2",
        tokenizer: Any = None,
        *,
        device: str | None = None,
        max_batch: int = 8,
        batch_window_s: float = 0.005,
        stop_token_ids: list[int] | None = None,
        name: str | None = None,
    ) -> None:
        self._owns_model = not isinstance(model, torch.nn.Module)
        # A model object is the trainer's own (it sees every update); a loaded one is a copy.
        self.needs_weight_sync = self._owns_model
        self.model: Any  # a Hugging Face or PEFT model (dynamic attributes); None once closed
        if isinstance(model, torch.nn.Module):  # a loaded model, or a PEFT (LoRA) wrapper of one
            self.model = model
            source = getattr(model, "name_or_path", "") or "model"
            if tokenizer is None:
                tokenizer = AutoTokenizer.from_pretrained(source)
        else:
            path = resolve_model(model)
            source = str(path)
            self.model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
            if device:
                self.model.to(device)
            if tokenizer is None:
                tokenizer = AutoTokenizer.from_pretrained(source)
        self.tokenizer = tokenizer
        self.name = name or Path(str(source)).name
        self.stop_token_ids = list(stop_token_ids) if stop_token_ids else end_of_turn_ids(tokenizer)
        if not self.stop_token_ids:
            raise ValueError("no stop token: the tokenizer has no eos and the template no end-of-turn token")
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else self.stop_token_ids[0]
        overridden = [k for k in _UNNEUTRALISABLE if getattr(self.model.generation_config, k, None) is not None]
        if overridden:
            log.warning("the model's generation_config sets %s; generate applies them before sampling", overridden)
        self._lock = threading.Lock()  # one generate or weight update at a time
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-generate")
        self._start_batching(max_batch, batch_window_s)

    @classmethod
    def for_live_model(cls, model: Any, tokenizer: Any, *, max_batch: int) -> HFPolicy:
        return cls(model, tokenizer, max_batch=max_batch)

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        self.check_request(prompt_ids, params)
        if params.max_new_tokens < 1:
            return Generation(token_ids=[], logprobs=[], text="", finish_reason="length")
        return await self._batcher.submit((list(prompt_ids), params))

    async def _run_batch(self, batch: list[tuple[list[int], SamplingParams]]) -> list[Generation]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.generate_batch, batch)

    def generate_batch(self, batch: list[tuple[list[int], SamplingParams]]) -> list[Generation]:
        """Blocking: one left-padded batched generate for all requests."""
        prompts = [p for p, _ in batch]
        params = [s for _, s in batch]
        width = max(len(p) for p in prompts)
        device = self.model.device
        input_ids = torch.tensor([[self.pad_token_id] * (width - len(p)) + p for p in prompts], device=device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        limits = [s.max_new_tokens for s in params]
        sampler = RowSampler(params)
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=max(limits),
            eos_token_id=self.stop_token_ids,
            pad_token_id=self.pad_token_id,
            use_cache=True,
            **_NEUTRAL_OPTIONS,
        )
        with self._lock, torch.no_grad():
            was_training = self.model.training
            self.model.eval()
            try:
                out = self.model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    generation_config=config,
                    logits_processor=LogitsProcessorList([sampler]),
                    stopping_criteria=StoppingCriteriaList([RowLimits(width, limits)]),
                )
            finally:
                self.model.train(was_training)
        steps = len(sampler.tokens)
        tokens = torch.stack(sampler.tokens, dim=1) if steps else torch.empty(len(batch), 0, dtype=torch.long)
        logprobs = torch.stack(sampler.logprobs, dim=1) if steps else torch.empty(len(batch), 0)
        generated = out[:, width:].cpu()
        results = []
        for row, limit in enumerate(limits):
            ids = tokens[row].tolist()
            gen = self.make_generation(ids, logprobs[row].tolist(), limit)
            n = len(gen.token_ids)
            if generated[row, :n].tolist() != gen.token_ids:  # generate must have emitted what we drew
                raise RuntimeError("generate's output differs from the sampled tokens")
            results.append(gen)
        return results

    def update_weights(self, source: WeightsSource) -> None:
        """Load new weights: the same live model object (nothing to do), another model, a state
        dict, or a saved folder."""
        if source is self.model:
            return
        state: Mapping[str, Any]
        if isinstance(source, torch.nn.Module):
            state = source.state_dict()
        elif isinstance(source, Mapping):
            state = source
        else:
            state = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32).state_dict()
        with self._lock, torch.no_grad():
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            real_missing = [k for k in missing if not _is_tied(self.model, k)]
            if real_missing or unexpected:
                raise ValueError(
                    f"weights do not match the model: missing {real_missing[:5]}, unexpected {unexpected[:5]}"
                )

    def close(self) -> None:
        self._batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._owns_model and self.model is not None:
            # The policy and its batcher reference each other, so a closed policy lives on until the
            # cyclic collector runs; the model it loaded is let go now (after a running batch).
            with self._lock:
                self.model = None
            release_memory()


def _is_tied(model: PreTrainedModel, key: str) -> bool:
    """Tied weights (lm_head = embeddings) are legitimately absent from saved state dicts."""
    tied = getattr(model, "_tied_weights_keys", None) or []
    if isinstance(tied, Mapping):
        tied = list(tied)
    return key in tied or (key.endswith("lm_head.weight") and getattr(model.config, "tie_word_embeddings", False))

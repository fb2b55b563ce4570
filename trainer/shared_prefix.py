"""One forward pass over the prompt that a micro-batch's sequences share, instead of one per sequence.

The episodes of a GRPO group start with the same tokens (system prompt, the environment's
instruction and first observation: 300-450 of a TextCraft episode's ~600), and episodes of one
environment share at least its instruction. The update runs that common prefix once, as one row,
and the rows' own tokens after it with the prefix's keys and values in front of them: the same
attention, positions and log-probabilities as full rows, and the gradient that reaches the prefix's
keys and values from every row flows back through its single pass (expand's backward sums it).

The caches below never grow: `update` returns what attention needs without storing the new keys,
so a layer that gradient checkpointing runs a second time in the backward pass sees exactly what
it saw the first time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

MIN_SHARED_TOKENS = 32  # below this the second forward call costs more than it saves


class _CollectLayer(DynamicLayer):
    """The prefix pass: keeps the keys and values it is given (the same ones on a recompute)."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.keys, self.values = key_states, value_states
        return key_states, value_states


class _PrefixLayer(DynamicLayer):
    """The rows' pass: the prefix's keys and values, broadcast over the rows, in front of theirs."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, rows: int) -> None:
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys = keys.expand(rows, *keys.shape[1:])
        self.values = values.expand(rows, *values.shape[1:])

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        keys, values = _held(self.keys), _held(self.values)
        return torch.cat([keys, key_states], dim=-2), torch.cat([values, value_states], dim=-2)


def shared_length(input_ids: torch.Tensor, attention_mask: torch.Tensor, first_position: int) -> int:
    """Tokens all rows share from the start, cut so that the prefix pass needs no logits: the first
    scored position t reads the logits at t - 1, which must come from the rows' pass."""
    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0) & attention_mask.bool().all(dim=0)
    differing = torch.nonzero(~same)
    common = int(differing[0]) if differing.numel() else input_ids.shape[1]
    length = min(common, first_position - 1)
    return length if length >= MIN_SHARED_TOKENS else 0


def forward_with_shared_prefix(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prefix: int,
    logits_to_keep: torch.Tensor,
) -> torch.Tensor:
    """The logits at `logits_to_keep` (positions of the full rows, all >= prefix), computed with
    the first `prefix` tokens run once."""
    rows = input_ids.shape[0]
    with _checkpoint_with_cache(model):
        return _two_passes(model, input_ids, attention_mask, prefix, logits_to_keep, rows)


def _two_passes(model: Any, input_ids: Any, attention_mask: Any, prefix: int, logits_to_keep: Any, rows: int) -> Any:
    layers = [_CollectLayer() for _ in range(_layers(model))]
    collect = DynamicCache()
    collect.layers = list(layers)
    model(
        input_ids=input_ids[:1, :prefix],
        attention_mask=attention_mask[:1, :prefix],
        past_key_values=collect,
        use_cache=True,
        logits_to_keep=1,
    )
    cache = DynamicCache()
    cache.layers = [_PrefixLayer(_held(layer.keys), _held(layer.values), rows) for layer in layers]
    out = model(
        input_ids=input_ids[:, prefix:],
        attention_mask=attention_mask,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=logits_to_keep - prefix,
    )
    return out.logits


@contextmanager
def _checkpoint_with_cache(model: torch.nn.Module) -> Iterator[None]:
    """transformers drops the cache of a layer it checkpoints (a growing cache would grow twice);
    these caches never grow, so the layers may keep them for this call."""
    layers = [m for m in model.modules() if hasattr(m, "_can_checkpoint_with_cache")]
    saved = [m.__dict__.get("_can_checkpoint_with_cache") for m in layers]
    for m in layers:
        m.__dict__["_can_checkpoint_with_cache"] = True  # shadows the class's False for this call
    try:
        yield
    finally:
        for m, value in zip(layers, saved, strict=True):
            if value is None:
                m.__dict__.pop("_can_checkpoint_with_cache")
            else:
                m.__dict__["_can_checkpoint_with_cache"] = value


def _held(tensor: torch.Tensor | None) -> torch.Tensor:
    if tensor is None:
        raise RuntimeError("the prefix pass left a layer without keys or values")
    return tensor


def _layers(model: torch.nn.Module) -> int:
    config = getattr(model, "config", None)
    layers = getattr(config, "num_hidden_layers", None)
    if layers is None:
        raise ValueError("shared-prefix forward needs a decoder with config.num_hidden_layers")
    return int(layers)

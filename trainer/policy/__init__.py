"""Policy backends: where completions come from.

`hf` (transformers generate, CPU default, can share the live training model), `vllm` (vLLM
in-process) and `openai` (any OpenAI-compatible completions server). Backends are imported
lazily so that using one never imports another's heavy dependencies.
"""

from __future__ import annotations

from typing import Any

from .base import MicroBatcher, Policy

BACKENDS = ("hf", "vllm", "openai")

__all__ = ["BACKENDS", "MicroBatcher", "Policy", "make_policy"]


def make_policy(backend: str, model: Any = "smollm2", **kwargs: Any) -> Policy:
    """Build a policy by backend name; `model` is a name/folder (or a base URL for "openai")."""
    if backend == "hf":
        from .hf import HFPolicy

        return HFPolicy(model, **kwargs)
    if backend == "vllm":
        from .vllm import VLLMPolicy

        return VLLMPolicy(model, **kwargs)
    if backend == "openai":
        from .openai import OpenAIPolicy

        return OpenAIPolicy(model, **kwargs)
    raise ValueError(f"unknown policy backend {backend!r}; choose one of {', '.join(BACKENDS)}")

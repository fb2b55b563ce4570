"""Expert demonstrations as token-exact sequences, for the behaviour-cloning warm start.

An expert episode is text (its turns come from the environment's oracle, not from a model); it is
tokenised through the same `ConversationBuilder` the rollouts use, so the cloned model learns turns
framed exactly as it will later generate them, ending with the template's end-of-turn token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from gymwire.client import EnvPool
from gymwire.trainer.agents import play_reference
from gymwire.trainer.rollout import EnvSettings, TaskRef
from gymwire.trainer.sequence import ConversationBuilder, encode, end_of_turn_ids
from gymwire.trainer.types import Generation, Trajectory


def tokenize_demonstration(tokenizer: Any, demo: Trajectory, max_total_tokens: int = 4096,
                           system: str | None = None) -> Trajectory:
    """Fill token_ids / loss_mask of an expert trajectory whose `messages` alternate user/assistant."""
    messages = demo.messages
    if not messages or messages[0]["role"] != "user":
        raise ValueError("a demonstration starts with the user message (instruction + first observation)")
    opening = [{"role": "system", "content": system}] if system else []
    builder = ConversationBuilder(tokenizer, [*opening, messages[0]], max_total_tokens=max_total_tokens)
    stop = end_of_turn_ids(tokenizer)[-1:]  # the template's end-of-turn token ends every expert turn
    for message in messages[1:]:
        if message["role"] == "assistant":
            ids = encode(tokenizer, message["content"]) + stop
            builder.add_generation(Generation(ids, [0.0] * len(ids), message["content"], "stop"))
        elif not builder.add_observation(message["content"]):
            break
    builder.finish()
    return builder.fill(demo)


async def collect_demonstrations(pool: EnvPool, refs: Sequence[TaskRef], tokenizer: Any,
                                 env_settings: dict[str, EnvSettings] | None = None,
                                 max_total_tokens: int = 4096, system: str | None = None) -> list[Trajectory]:
    """The expert plays every task once; successful episodes become tokenised demonstrations."""
    settings = env_settings or {}
    episodes = await asyncio.gather(*(play_reference(pool, ref, "oracle", settings.get(ref.env, EnvSettings()))
                                      for ref in refs))
    return [tokenize_demonstration(tokenizer, t, max_total_tokens, system) for t in episodes
            if t.success and not t.aborted]

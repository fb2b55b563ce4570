"""Reference agents that need no model: the environment's own expert, and uniform random play.

They give the top and bottom rows of every evaluation table, and the expert's episodes are the
demonstrations for the behaviour-cloning warm start. Their turns use the ReAct format the
environments' instructions ask for, so a model cloned on them learns the same format. They play
through the rollout engine's episode loop, so a demonstration is the sequence a rollout builds.
"""

from __future__ import annotations

import random
from typing import Any

from gymwire.client import AsyncEpisode, EnvPool
from gymwire.trainer.rollout import Conversation, EnvConfig, NoTurn, TaskRef, TurnSource, play_episode, text_turn
from gymwire.trainer.types import Generation, Trajectory

REFERENCE_AGENTS = ("oracle", "random")
NONSENSE_ACTION = "I am not sure what to do."


def react_turn(action: str, thought: str = "I will take the next step towards the goal.") -> str:
    return f"Thought: {thought}\nAction: {action}"


class ReferenceTurns(TurnSource):
    """Turns from the expert ("oracle") or uniformly random valid actions ("random"), as text."""

    def __init__(self, kind: str, seed: int = 0, tokenizer: Any = None) -> None:
        if kind not in REFERENCE_AGENTS:
            raise ValueError(f"unknown reference agent {kind!r}; use oracle or random")
        self.kind = kind
        self.rng = random.Random(seed)
        self.tokenizer = tokenizer

    async def next_turn(self, episode: AsyncEpisode, conversation: Conversation) -> Generation | NoTurn:
        if self.kind == "oracle":
            turn = await episode.expert_action()
            if turn is None:
                return NoTurn("the expert has no move", truncated=False)
            if "Action:" not in turn:  # a bare action: give it the turn format agents are asked for
                turn = react_turn(turn)
        else:
            actions = await episode.valid_actions()
            turn = react_turn(self.rng.choice(actions) if actions else NONSENSE_ACTION)
        return text_turn(conversation, turn)


async def play_reference(
    pool: EnvPool,
    ref: TaskRef,
    kind: str,
    settings: EnvConfig = EnvConfig(),
    seed: int = 0,
    group_id: str = "",
    *,
    tokenizer: Any = None,
    max_total_tokens: int | None = None,
    system: str | None = None,
) -> Trajectory:
    """Play one episode with the expert or random valid actions.

    The trajectory's messages hold the conversation as text. With a tokenizer it also holds the
    token sequence (the agent's turns with loss mask 1), exactly as a rollout of a model writing
    the same turns under the same `max_total_tokens` and `system` prompt would build it.
    """
    return await play_episode(
        pool,
        ref,
        ReferenceTurns(kind, seed, tokenizer),
        settings,
        group_id=group_id or f"{kind}/{ref.task_id}",
        system=system,
        max_total_tokens=max_total_tokens,
    )

"""Expert demonstrations as token-exact sequences, for the behaviour-cloning warm start.

An expert episode is text (its turns come from the environment's oracle, not from a model); it is
played through the rollout engine's episode loop with the policy's tokenizer, so the cloned model
learns turns framed exactly as it will later generate them, ending with the template's end-of-turn token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from gymwire.client import EnvPool
from gymwire.trainer.agents import play_reference
from gymwire.trainer.console import Phase
from gymwire.trainer.rollout import EnvConfig, TaskRef
from gymwire.trainer.types import Trajectory


async def collect_demonstrations(
    pool: EnvPool,
    refs: Sequence[TaskRef],
    tokenizer: Any,
    env_settings: dict[str, EnvConfig] | None = None,
    max_total_tokens: int = 4096,
    system: str | None = None,
    phase: Phase | None = None,
) -> list[Trajectory]:
    """The expert plays every task once; its successful episodes that fit the context are the demonstrations.
    `phase`: a console line counting the episodes played and kept."""
    settings = env_settings or {}
    kept = 0

    async def one(ref: TaskRef) -> Trajectory:
        nonlocal kept
        episode = await play_reference(
            pool,
            ref,
            "oracle",
            settings.get(ref.env, EnvConfig()),
            tokenizer=tokenizer,
            max_total_tokens=max_total_tokens,
            system=system,
        )
        if phase is not None:
            kept += _usable(episode)
            phase.update(f"expert episodes, {kept} kept", advance=1)
        return episode

    episodes = await asyncio.gather(*(one(ref) for ref in refs))
    return [t for t in episodes if _usable(t)]


def _usable(episode: Trajectory) -> bool:
    return episode.success and not episode.aborted and not episode.truncated

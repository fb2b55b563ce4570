"""How many episodes may be in flight on one engine: as many as its KV cache holds.

A conversation's KV stays cached between its turns only while the engine has room for it. When the
episodes in flight need more than the cache holds, every turn of every episode evicts another's KV
and recomputes its own whole conversation, and preempted requests recompute again: a BabyAI hard
evaluation (64 episodes of up to 1,536 tokens against 23k tokens of cache) ran 5 episodes in 8
minutes. So an episode is admitted only while the tokens reserved for the live ones, plus its own,
fit the cache. An episode's reservation is the worst case (its whole token budget) until episodes
have finished on this engine, then a quarter above their mean length: short episodes run many at
a time, long ones fewer. One episode is always admitted, whatever its size.

`rollout: {kv_admission: false}` starts every episode at once instead. The reservation is conservative:
it counts neither a group's shared prompt nor that an episode holds its full length only at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class EpisodeSlot:
    """One admitted episode: set `tokens` to its final length when it ends, for the estimate."""

    def __init__(self, reserved: int) -> None:
        self.reserved = reserved
        self.tokens = 0


class KVAdmission:
    """Admits episodes on an engine whose KV cache holds `capacity` tokens. Shared by every rollout
    engine and evaluation that samples from that engine (it belongs to the policy)."""

    MARGIN = 1.25  # over the mean finished length: episodes vary, and an overcommitted cache thrashes

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.reserved = 0
        self.live = 0
        self.finished = 0
        self.finished_tokens = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Condition()  # remade for each event loop that uses it (one at a time)

    def reservation(self, budget: int) -> int:
        """Tokens to set aside for an episode that may use up to `budget`."""
        if not self.finished:
            return budget
        return min(budget, int(self.MARGIN * self.finished_tokens / self.finished) + 1)

    @contextlib.asynccontextmanager
    async def slot(self, budget: int) -> AsyncIterator[EpisodeSlot]:
        """Wait until the episode fits beside the live ones, then hold its reservation until it ends."""
        if self._loop is not asyncio.get_running_loop():
            self._loop, self._changed = asyncio.get_running_loop(), asyncio.Condition()
        changed = self._changed
        async with changed:
            await changed.wait_for(lambda: self.live == 0 or self.reserved + self.reservation(budget) <= self.capacity)
            slot = EpisodeSlot(self.reservation(budget))
            self.reserved += slot.reserved
            self.live += 1
        try:
            yield slot
        finally:
            async with changed:
                self.reserved -= slot.reserved
                self.live -= 1
                if slot.tokens:
                    self.finished += 1
                    self.finished_tokens += slot.tokens
                changed.notify_all()

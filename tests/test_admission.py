"""Episodes in flight on one engine are bounded by its KV cache (trainer/policy/admission.py)."""

from __future__ import annotations

import asyncio

from gymwire.trainer.policy.admission import KVAdmission


async def _episodes(admission: KVAdmission, count: int, budget: int, length: int) -> int:
    """Start `count` episodes of `length` tokens at once; how many were admitted before any ended."""
    ended = asyncio.Event()

    async def episode() -> None:
        async with admission.slot(budget) as slot:
            await ended.wait()
            slot.tokens = length

    episodes = [asyncio.ensure_future(episode()) for _ in range(count)]
    for _ in range(3):
        await asyncio.sleep(0)  # every episode that can be admitted is
    admitted = admission.live
    ended.set()
    await asyncio.gather(*episodes)
    return admitted


def test_worst_case_until_episodes_finish_then_their_measured_length():
    async def run() -> tuple[int, int]:
        admission = KVAdmission(capacity=12_000)
        first = await _episodes(admission, 20, budget=1_500, length=600)  # nothing measured yet: 1,500 each
        later = await _episodes(admission, 40, budget=1_500, length=600)  # 751 each (600, a quarter more)
        assert admission.live == admission.reserved == 0
        return first, later

    assert run_in_loop(run()) == (8, 15)


def test_an_episode_larger_than_the_cache_still_runs_alone():
    async def run() -> int:
        return await _episodes(KVAdmission(capacity=1_000), 3, budget=4_000, length=3_000)

    assert run_in_loop(run()) == 1


def test_one_admission_serves_one_event_loop_after_another():
    admission = KVAdmission(capacity=3_000)
    assert run_in_loop(_episodes(admission, 4, budget=1_000, length=500)) == 3
    assert run_in_loop(_episodes(admission, 8, budget=1_000, length=500)) == 4  # 626 each: 4 fit in 3,000


def run_in_loop(coro):
    return asyncio.run(coro)

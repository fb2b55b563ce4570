"""The rollout engine with the real default model against real TextCraft servers.

Checks the masks of multi-turn rollouts token by token, and that a server dying in the middle of
a batch of episodes neither loses the batch nor scores the lost episodes as failures.
"""

from __future__ import annotations

import asyncio

import pytest

from gymwire.client import EnvPool
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.textcraft import TextCraftEnvironment
from gymwire.trainer.model import set_threads
from gymwire.trainer.policy.hf import HFPolicy
from gymwire.trainer.rollout import EnvConfig, RolloutConfig, RolloutEngine, TaskRef

pytestmark = pytest.mark.slow
TASK = TaskRef("textcraft", "goal:blue_dye")


@pytest.fixture(scope="module")
def policy():
    set_threads(1)
    with HFPolicy("smollm2") as p:
        yield p


def rollout_config(tokens: int = 24) -> RolloutConfig:
    return RolloutConfig(max_new_tokens=tokens, temperature=1.0, max_total_tokens=2048)


def test_multi_turn_masks_are_exact(policy):
    with BackgroundServer(TextCraftEnvironment) as server:

        async def main():
            async with EnvPool([server.address]) as pool:
                engine = RolloutEngine(pool, policy, rollout_config(), {"textcraft": EnvConfig(max_turns=3)})
                return await engine.group(TASK, 2, base_seed=1)

        group = asyncio.run(main())
    tok = policy.tokenizer
    for t in group:
        assert not t.aborted and t.turns == 3 and t.truncated
        assert len(t.token_ids) == len(t.loss_mask) == len(t.logprobs)
        # Mask-1 runs are exactly the model's turns, in order, each ending where the model stopped.
        runs, current = [], []
        for token, m in zip(t.token_ids, t.loss_mask, strict=True):
            if m:
                current.append(token)
            elif current:
                runs.append(current)
                current = []
        if current:
            runs.append(current)
        assistant = [m["content"] for m in t.messages if m["role"] == "assistant"]
        assert len(runs) == len(assistant) == 3
        for ids, text in zip(runs, assistant, strict=True):
            assert tok.decode(ids, skip_special_tokens=True) == text
        assert sum(t.loss_mask) == t.generated_tokens
        # One record per turn, agreeing with the sequence: tokens sampled, the server's verdicts, the return.
        assert [s.turn for s in t.steps] == [0, 1, 2]
        assert [s.generated_tokens for s in t.steps] == [len(ids) for ids in runs]
        assert all(s.generate_s > 0 and s.step_s > 0 for s in t.steps)
        assert t.invalid_actions == sum(not s.action_valid for s in t.steps)
        assert t.reward == sum(s.reward for s in t.steps) and t.steps[-1].truncated
        assert all(lp <= 0 for lp, m in zip(t.logprobs, t.loss_mask, strict=True) if m)
        assert all(lp == 0 for lp, m in zip(t.logprobs, t.loss_mask, strict=True) if not m)
        # Environment text is in the sequence with mask 0: the observations appear in the decoded prompt part.
        context = tok.decode([x for x, m in zip(t.token_ids, t.loss_mask, strict=True) if not m])
        assert "Goal: craft blue dye." in context and t.info["difficulty"] in ("easy", "hard")
        user_turns = [m["content"] for m in t.messages if m["role"] == "user"][1:]
        assert all(turn in context for turn in user_turns)


class KillsReplicaOnFirstGeneration(HFPolicy):
    """The real policy, plus a hook: the first generation stops one env server mid-batch."""

    victim: BackgroundServer | None = None

    async def generate(self, prompt_ids, params):
        if self.victim is not None:
            victim, self.victim = self.victim, None
            await asyncio.to_thread(victim.stop)
        return await super().generate(prompt_ids, params)


def test_dead_server_mid_batch_is_retried_not_scored(policy):
    healthy = BackgroundServer(TextCraftEnvironment).start()
    doomed = BackgroundServer(TextCraftEnvironment).start()
    killer = KillsReplicaOnFirstGeneration(policy.model, policy.tokenizer)
    killer.victim = doomed

    async def main():
        async with EnvPool([healthy.address, doomed.address], cooloff=60) as pool:
            engine = RolloutEngine(pool, killer, rollout_config(16), {"textcraft": EnvConfig(max_turns=2)})
            groups = await engine.groups([TASK, TaskRef("textcraft", "goal:oak_planks")], 3, base_seed=0)
            return groups, engine.stats

    try:
        groups, stats = asyncio.run(main())
    finally:
        healthy.stop()
        doomed.stop()
        killer.close()
    episodes = [t for g in groups for t in g]
    assert len(episodes) == 6
    assert stats.aborted_retried >= 1, "some episodes had started on the server that died"
    assert stats.aborted_dropped == 0
    assert all(not t.aborted and t.turns == 2 for t in episodes)  # each finished on the healthy replica

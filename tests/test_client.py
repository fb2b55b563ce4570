"""Clients against real servers: sync, asyncio, a pool of replicas, aborts, the Gymnasium adapter."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gymwire.client import AsyncEnvClient, EnvClient, EnvPool, EpisodeAborted, GymwireError
from gymwire.client.connection import ABORTING_CODES
from gymwire.client.gym import GymwireEnv
from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.sdk.background import BackgroundServer


@pytest.mark.parametrize("transport", ["unary", "session"])
def test_sync_episode_with_expert(guess_server, transport):
    with EnvClient(guess_server.address) as client:
        assert client.info().name == "guess"
        tasks = client.list_tasks(split="test", difficulty="hard")
        assert len(tasks) == 50 and all(t.difficulty == "hard" for t in tasks)
        assert len(client.list_tasks(limit=7)) == 7
        episode = client.reset(tasks[0].id, include_valid_actions=True, transport=transport)
        assert episode.observation.valid_actions_included
        while not episode.done:
            action = episode.expert_action()
            assert action in episode.observation.valid_actions
            episode.step(f"Thought: bisect. Action: {action}")
        assert episode.observation.success and episode.observation.reward == 1.0
        with pytest.raises(GymwireError) as err:
            episode.step("guess 1")
        assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION


def test_sample_reset_is_seeded(guess_server):
    with EnvClient(guess_server.address) as client:
        a = client.reset(split="train", difficulty="easy", seed=7)
        b = client.reset(split="train", difficulty="easy", seed=7)
        assert a.task.id == b.task.id and a.task.split == "train"
        with pytest.raises(GymwireError) as err:
            client.reset("nope")
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "nope" in err.value.message


@pytest.mark.parametrize("transport", ["unary", "session"])
def test_async_client_many_concurrent_episodes(guess_server, transport):
    async def play(client: AsyncEnvClient, task_id: str) -> bool:
        episode = await client.reset(task_id, transport=transport)
        while not episode.done:
            await episode.step(await episode.expert_action())
        await episode.close()
        return episode.observation.success

    async def main() -> list[bool]:
        async with AsyncEnvClient(guess_server.address) as client:
            tasks = await client.list_tasks(split="train", limit=64)
            return await asyncio.gather(*(play(client, t.id) for t in tasks))

    assert all(asyncio.run(main()))


@pytest.mark.parametrize("transport", ["unary", "session"])
def test_pool_spreads_resets_and_survives_a_dead_replica(transport):
    first = BackgroundServer(GuessEnvironment).start()
    second = BackgroundServer(GuessEnvironment).start()

    async def main():
        async with EnvPool([first.address, second.address], cooloff=30) as pool:
            assert pool.env_names == ["guess"]
            episodes = [await pool.reset("guess", "test-hard-1", transport=transport) for _ in range(4)]
            used = {e.client.address for e in episodes}
            assert used == {first.address, second.address}
            doomed = next(e for e in episodes if e.client.address == second.address)
            second.stop()
            with pytest.raises(EpisodeAborted) as err:
                await doomed.step("guess 50")
            assert err.value.code in ABORTING_CODES  # gRPC reports a dead stream as INTERNAL or UNAVAILABLE
            pool.mark_down(doomed.client)
            fresh = [await pool.reset("guess", "test-hard-1", transport=transport) for _ in range(3)]
            assert {e.client.address for e in fresh} == {first.address}
            with pytest.raises(GymwireError) as unknown:
                await pool.reset("webshop", "x")
            assert unknown.value.code == grpc.StatusCode.NOT_FOUND

    try:
        asyncio.run(main())
    finally:
        first.stop()
        second.stop()


def test_pool_reports_unreachable_address(guess_server):
    async def main():
        with pytest.raises(GymwireError, match="cannot reach 127.0.0.1:9"):
            await EnvPool([guess_server.address, "127.0.0.1:9"]).connect()

    asyncio.run(main())


def test_gymnasium_adapter(guess_server):
    env = GymwireEnv(guess_server.address, split="test", difficulty="easy", include_valid_actions=True)
    try:
        obs, info = env.reset(seed=3)
        assert "between 1 and 10" in obs and info["valid_actions"]
        assert env.action_space.contains("guess 5")
        terminated = truncated = False
        low, high = 1, 10
        while not (terminated or truncated):
            guess = (low + high) // 2
            obs, reward, terminated, truncated, info = env.step(f"guess {guess}")
            if "too low" in obs:
                low = guess + 1
            elif "too high" in obs:
                high = guess - 1
        assert terminated and reward == 1.0 and info["success"]
        obs2, info2 = env.reset(options={"task_id": info["task_id"]})
        assert obs2 == "I am thinking of a number between 1 and 10."
    finally:
        env.close()


def test_stream_episode_errors_and_frees_its_session(guess_server):
    async def main():
        async with AsyncEnvClient(guess_server.address) as client:
            with pytest.raises(GymwireError) as err:
                await client.reset("no-such-task", transport="session")
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
            episode = await client.reset("test-easy-2", transport="session")
            assert episode.streaming
            await episode.step("guess 0")
            sid = episode.session_id
            await episode.close()
            unary = await client.reset("test-easy-2")
            unary.session_id = sid  # the stream's session is gone once the stream ended
            with pytest.raises(EpisodeAborted) as gone:
                await unary.step("guess 1")
            assert gone.value.code == grpc.StatusCode.NOT_FOUND

    asyncio.run(main())


def test_reset_names_its_transport_and_the_old_keywords_still_work_for_now(guess_server):
    async def main():
        async with AsyncEnvClient(guess_server.address) as client:
            for transport in ("multiplex", "session", "unary"):
                episode = await client.reset("test-easy-2", transport=transport)
                assert episode.transport == transport
                assert (await episode.step("guess 1")).turn == 1
                await episode.close()
            assert (await client.reset("test-easy-2")).transport == "unary"
            with pytest.raises(ValueError, match="transport must be one of"):
                await client.reset("test-easy-2", transport="stream")
            with pytest.raises(TypeError):
                await client.reset("test-easy-2", transport="session", stream=True)
            for old, meant in (({"multiplex": True}, "multiplex"), ({"stream": True}, "session"), ({}, "unary")):
                with pytest.warns(DeprecationWarning, match="transport="):
                    episode = await client.reset("test-easy-2", **{"stream": False, **old})
                assert episode.transport == meant
                await episode.close()

    asyncio.run(main())

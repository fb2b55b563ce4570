"""The Multiplex stream end to end: many episodes over one stream, errors, fallback, worker spreading."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest

from gymwire.client import EnvPool, EpisodeAborted, GymwireError
from gymwire.client.aio import AsyncEnvClient
from gymwire.client.connection import ChannelOptions
from gymwire.client.multiplex import MultiplexTransport
from gymwire.env_servers.local import LocalServer
from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.sdk import EnvDescription, Environment, Episode, StepOutcome, Task, TaskCatalogue
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.sdk.metrics import Metrics
from gymwire.env_servers.sdk.server import ServerConfig, _Handlers
from gymwire.env_servers.sdk.service import EnvService
from gymwire.v1 import environment_pb2 as pb

GUESSES = ["guess 50", "guess 25", "nonsense", "guess 75", "guess 60"]


async def _play(client: AsyncEnvClient, task_id: str, **kwargs) -> list[tuple[str, bool, int]]:
    episode = await client.reset(task_id, max_turns=len(GUESSES), **kwargs)
    seen = [(episode.observation.text, episode.observation.action_valid, episode.observation.turn)]
    try:
        for guess in GUESSES:
            if episode.done:
                break
            obs = await episode.step(guess)
            seen.append((obs.text, obs.action_valid, obs.turn))
    finally:
        await episode.close()
    return seen


def test_many_episodes_share_one_stream_and_match_unary_calls(guess_server) -> None:
    tasks = [f"test-hard-{i}" for i in range(40)]

    async def main() -> None:
        async with AsyncEnvClient(guess_server.address) as client:
            probe = await client.reset(tasks[0], transport="multiplex")
            assert isinstance(probe._transport, MultiplexTransport)
            await probe.close()
            unary = await asyncio.gather(*(_play(client, t) for t in tasks))
            multiplexed = await asyncio.gather(*(_play(client, t, transport="multiplex") for t in tasks))
            assert multiplexed == unary
            # valid actions and the expert over the stream
            episode = await client.reset("test-easy-1", transport="multiplex", include_valid_actions=True)
            assert episode.observation.valid_actions_included
            assert await episode.valid_actions() == [f"guess {n}" for n in range(1, 11)]
            assert (await episode.expert_action() or "").startswith("guess ")
            await episode.close()

    asyncio.run(main())


def test_errors_are_per_operation_and_the_stream_survives(guess_server) -> None:
    async def main() -> None:
        async with AsyncEnvClient(guess_server.address) as client:
            with pytest.raises(GymwireError) as bad_task:
                await client.reset("no-such-task", transport="multiplex")
            assert bad_task.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert not isinstance(bad_task.value, EpisodeAborted)
            episode = await client.reset("test-easy-2", transport="multiplex", max_turns=1)
            await episode.step("nonsense")
            assert episode.done
            with pytest.raises(GymwireError):
                await episode.step("guess 1")
            with pytest.raises(GymwireError) as oversized:
                other = await client.reset("test-easy-2", transport="multiplex")
                await other.step("x" * 100_000)
            assert oversized.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert len(await _play(client, "test-easy-3", transport="multiplex")) > 1  # the stream still works

    asyncio.run(main())


def test_a_thread_pool_server_answers_out_of_order_without_holding_back_others() -> None:
    config = ServerConfig(port=0, grace_seconds=1.0, threads=4)
    with BackgroundServer(GuessEnvironment, config) as server:

        async def main() -> None:
            async with AsyncEnvClient(server.address) as client:
                tasks = [f"train-hard-{i}" for i in range(32)]
                multiplexed = await asyncio.gather(*(_play(client, t, transport="multiplex") for t in tasks))
                unary = await asyncio.gather(*(_play(client, t) for t in tasks))
                assert multiplexed == unary

        asyncio.run(main())


class _WithoutMultiplex(grpc.GenericRpcHandler):
    """A server as it was before the Multiplex RPC existed."""

    def __init__(self, inner: grpc.GenericRpcHandler):
        self.inner = inner

    def service(self, handler_call_details):
        if handler_call_details.method.endswith("/Multiplex"):
            return None
        return self.inner.service(handler_call_details)


def test_a_server_without_multiplex_gets_session_streams() -> None:
    async def main() -> None:
        handlers = _Handlers(Metrics(enabled=False))
        handlers.service = EnvService(GuessEnvironment())
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((_WithoutMultiplex(handlers.generic_handler()),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with AsyncEnvClient(f"127.0.0.1:{port}") as client:
                episode = await client.reset("test-hard-3", transport="multiplex")
                assert episode.streaming
                await episode.step("guess 50")
                await episode.close()
                assert len(await _play(client, "test-hard-4", transport="multiplex")) == len(GUESSES) + 1
        finally:
            await server.stop(0)

    asyncio.run(main())


def test_a_server_that_dies_aborts_its_multiplexed_episodes() -> None:
    server = BackgroundServer(GuessEnvironment).start()

    async def main() -> None:
        async with AsyncEnvClient(server.address) as client:
            episodes = [await client.reset("test-hard-5", transport="multiplex") for _ in range(3)]
            await episodes[0].step("guess 1")
            await asyncio.to_thread(server.stop)
            for episode in episodes:
                with pytest.raises(EpisodeAborted):
                    await episode.step("guess 2")
                await episode.close()

    asyncio.run(main())


def test_the_pool_spreads_episodes_over_every_worker() -> None:
    with LocalServer("guess", "--workers", "2") as server:

        async def main() -> Counter[str]:
            async with EnvPool([server.address]) as pool:
                assert sorted([(await c.info()).worker.index for c in pool.replicas["guess"]]) == [0, 1]
                episodes = [await pool.reset("guess", "test-hard-1", transport="multiplex") for _ in range(16)]
                shares = Counter(e.session_id.partition("-")[0] for e in episodes)
                await asyncio.gather(*(e.step("guess 50") for e in episodes))
                await asyncio.gather(*(e.close() for e in episodes))
                return shares

        assert asyncio.run(main()) == Counter({"w0": 8, "w1": 8})


def test_multiplex_results_of_a_raw_stream_keep_each_slots_order(guess_server) -> None:
    """Several operations of one slot in one message run in order, even with other slots between."""
    ops = [pb.MultiplexOp(slot=7, reset=pb.ResetRequest(task_id="test-hard-9"))]
    ops += [pb.MultiplexOp(slot=7, step=pb.StepRequest(action="guess 50", step_index=i)) for i in range(3)]
    ops += [pb.MultiplexOp(slot=8, step=pb.StepRequest(action="guess 50"))]
    with grpc.insecure_channel(guess_server.address) as channel:
        from gymwire.v1 import environment_pb2_grpc as pb_grpc

        replies = list(pb_grpc.EnvironmentServiceStub(channel).Multiplex(iter([pb.MultiplexRequest(ops=ops)])))
    results = [r for reply in replies for r in reply.results]
    slot7 = [r for r in results if r.slot == 7]
    assert [r.WhichOneof("result") for r in slot7] == ["reset", "step", "step", "step"]
    assert [r.step.observation.turn for r in slot7[1:]] == [1, 2, 3]
    assert [r.WhichOneof("result") for r in results if r.slot == 8] == ["error"]


class _LongEcho(Episode):
    def reset(self) -> str:
        return "speak"

    def step(self, text: str) -> StepOutcome:
        return StepOutcome(text * 2)


class LongEchoEnvironment(Environment):
    """Observations twice as long as the turn: a few hundred sessions fill more than 4 MiB per turn."""

    def describe(self) -> EnvDescription:
        return EnvDescription("long-echo", "1.0.0", "echoes twice", "say anything", "any text")

    def catalogue(self) -> TaskCatalogue:
        return TaskCatalogue([Task("t", "train", "easy")])

    def start(self, task: Task) -> Episode:
        return _LongEcho()


def test_a_turn_larger_than_the_message_limit_is_split_across_messages() -> None:
    sessions, turn = 400, "x" * 8000  # 3.2 MB of turns up, 6.4 MB of observations down, per turn
    with BackgroundServer(LongEchoEnvironment) as server:

        async def main() -> None:
            async with AsyncEnvClient(server.address) as client:
                episodes = await asyncio.gather(*(client.reset("t", transport="multiplex") for _ in range(sessions)))
                for _ in range(2):
                    observations = await asyncio.gather(*(e.step(turn) for e in episodes))
                    assert all(o.text == turn * 2 for o in observations)
                await asyncio.gather(*(e.close() for e in episodes))

        asyncio.run(main())


def test_the_multiplex_stream_needs_the_bearer_token() -> None:
    config = ServerConfig(port=0, grace_seconds=1.0, auth_token="s3cret")
    with BackgroundServer(GuessEnvironment, config) as server:

        async def main() -> None:
            async with AsyncEnvClient(server.address) as anonymous:
                with pytest.raises(GymwireError) as refused:
                    await anonymous.reset("test-hard-2", transport="multiplex")
                # gRPC sometimes reports a refusal that races the stream's first write as a broken
                # connection (the Session stream shows the same); either way no episode starts.
                assert refused.value.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE)
            async with AsyncEnvClient(server.address, ChannelOptions(token="s3cret")) as client:
                assert len(await _play(client, "test-hard-2", transport="multiplex")) > 1

        asyncio.run(main())

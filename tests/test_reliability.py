"""Bounds every server keeps when an environment or a client misbehaves: bad rewards, replies the protocol
cannot carry, abusive filters and ids, slow steps, and the caps on what one client may hold."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import tracemalloc
import urllib.error
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.faulty_env import FaultyEnvironment
from gymwire.client import ChannelOptions, EnvClient, EnvPool, EpisodeAborted, GymwireError
from gymwire.env_servers.local import LocalServer, free_port
from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.sdk.server import ServerConfig
from gymwire.env_servers.sdk.service import ServiceLimits
from gymwire.v1 import environment_pb2 as pb
from gymwire.v1 import environment_pb2_grpc as pb_grpc


@pytest.fixture(scope="module")
def faulty_server():
    with BackgroundServer(FaultyEnvironment) as server:
        yield server


def assert_dropped(episode, code: grpc.StatusCode, action: str) -> EpisodeAborted:
    """`action` aborts the episode with `code`, and the session is gone: a retry never replays an old reply."""
    with pytest.raises(EpisodeAborted) as err:
        episode.step(action)
    assert err.value.code == code, err.value
    with pytest.raises(EpisodeAborted) as retry:
        episode.step("guess 1")  # the same step_index again
    assert retry.value.code == grpc.StatusCode.NOT_FOUND, retry.value
    return err.value


@pytest.mark.parametrize("transport", ["unary", "session"])
@pytest.mark.parametrize("reward", ["nan", "inf"])
def test_non_finite_reward_is_internal_and_drops_the_session(faulty_server, transport, reward):
    with EnvClient(faulty_server.address) as client:
        episode = client.reset("test-hard-0", transport=transport)
        episode.step("guess 1")
        error = assert_dropped(episode, grpc.StatusCode.INTERNAL, reward)
        assert "finite" in error.message
        assert client.reset("test-hard-0").step("guess 1").turn == 1  # the server keeps serving


def test_info_a_struct_cannot_hold_drops_the_session_before_the_step_counts(faulty_server):
    with EnvClient(faulty_server.address) as client:
        episode = client.reset("test-hard-0")
        episode.step("guess 1")
        error = assert_dropped(episode, grpc.StatusCode.INTERNAL, "badinfo")
        assert "Struct" in error.message


@pytest.mark.parametrize("transport", ["unary", "session"])
def test_oversized_observation_is_internal_not_applied_and_lost(faulty_server, transport):
    with EnvClient(faulty_server.address) as client:
        episode = client.reset("test-hard-0", transport=transport)
        error = assert_dropped(episode, grpc.StatusCode.INTERNAL, "huge")
        assert "bytes" in error.message


def test_list_tasks_pages_fit_the_message_limit():
    class BigMetadata(GuessEnvironment):
        def catalogue(self):
            from gymwire.env_servers.sdk import Task, TaskCatalogue

            return TaskCatalogue(Task(f"t{i}", "test", "easy", "", {"blob": "m" * 20_000}) for i in range(400))

    with BackgroundServer(BigMetadata) as server, EnvClient(server.address) as client:
        tasks = client.list_tasks()  # 8 MB in all, in pages under the 4 MiB default limit
        assert [t.id for t in tasks] == [f"t{i}" for i in range(400)]


def test_filter_abuse_does_not_grow_the_catalogue():
    catalogue = GuessEnvironment().catalogue()
    catalogue.list("test", "easy")  # real filters are fine to remember
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(300):
            assert not catalogue.list(f"{i}" + "s" * 100_000, "easy", "")
            assert not catalogue.list("", f"{i}" + "d" * 100_000, "number")
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 2_000_000  # 60 MB of filters came and went
    assert len(catalogue.list("test", "easy")) == 50


def test_filter_abuse_over_the_wire_still_answers(guess_server):
    with EnvClient(guess_server.address) as client:
        assert client.list_tasks(split="x" * 100_000) == []
        with pytest.raises(GymwireError) as err:
            client.reset(split="x" * 100_000, seed=1)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert len(err.value.message) < 1000


def test_error_messages_do_not_echo_unbounded_input(guess_server):
    huge = "z" * 30_000
    channel = grpc.insecure_channel(guess_server.address)
    stub = pb_grpc.EnvironmentServiceStub(channel)
    calls = [
        (stub.Step, pb.StepRequest(session_id=huge, action="guess 1"), grpc.StatusCode.NOT_FOUND),
        (stub.ValidActions, pb.ValidActionsRequest(session_id=huge), grpc.StatusCode.NOT_FOUND),
        (stub.Reset, pb.ResetRequest(task_id=huge), grpc.StatusCode.INVALID_ARGUMENT),
        (stub.ListTasks, pb.ListTasksRequest(page_token=huge), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    try:
        for method, request, code in calls:
            with pytest.raises(grpc.RpcError) as err:
                method(request, timeout=10)
            assert err.value.code() == code, err.value
            assert len(err.value.details()) < 1000
    finally:
        channel.close()


def test_session_ttl_counts_from_the_end_of_a_request():
    limits = ServiceLimits(session_ttl_seconds=1.5)
    config = ServerConfig(port=0, grace_seconds=0.5, sweep_seconds=0.1, threads=1, limits=limits)
    with BackgroundServer(FaultyEnvironment, config) as server, EnvClient(server.address) as client:
        episode = client.reset("test-hard-0")
        episode.step("slow 2")  # longer than the TTL: the session is in use, not idle
        time.sleep(0.7)
        assert episode.step("guess 1").turn == 2
        time.sleep(2.5)
        with pytest.raises(EpisodeAborted) as err:
            episode.step("guess 2")
        assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_guess_reads_a_huge_number_as_an_invalid_action(guess_server):
    with EnvClient(guess_server.address) as client:
        o = client.reset("test-hard-0").step("guess " + "9" * 5000)
        assert not o.action_valid and "out of range" in o.text


def test_health_answers_while_slow_env_code_runs():
    config = ServerConfig(port=0, grace_seconds=0.5, threads=0)
    with BackgroundServer(FaultyEnvironment, config) as server, EnvClient(server.address) as client:
        episode = client.reset("test-hard-0")
        episode.step("slow 0.2")  # env code this slow leaves the event loop
        slow = threading.Thread(target=episode.step, args=("slow 3",))
        slow.start()
        try:
            time.sleep(0.5)
            with EnvClient(server.address) as prober:
                assert prober.health(timeout=2.0)  # answered while the 3 s step runs
                assert prober.reset("test-hard-1").step("guess 50").turn == 1  # and so are other sessions
        finally:
            slow.join()


def test_open_streams_are_capped():
    config = ServerConfig(port=0, grace_seconds=0.5, max_streams=2)
    with BackgroundServer(GuessEnvironment, config) as server, EnvClient(server.address) as client:
        first = client.reset("test-easy-0", transport="session")
        second = client.reset("test-easy-1", transport="session")
        with pytest.raises(EpisodeAborted) as err:  # back-pressure: the episode goes elsewhere or waits
            client.reset("test-easy-2", transport="session")
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "streams" in err.value.message
        assert client.reset("test-easy-2").step("guess 1").turn == 1  # unary calls are not streams
        first.close()
        deadline = time.monotonic() + 10
        while True:  # the server learns of the stream's end asynchronously
            try:
                third = client.reset("test-easy-2", transport="session")
                break
            except GymwireError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert third.step("guess 1").turn == 1 and second.step("guess 1").turn == 1


def test_a_multiplex_stream_beyond_the_cap_is_back_pressure_in_band():
    """The Multiplex stream is refused as the Session stream is: RESOURCE_EXHAUSTED, never a broken stream."""
    config = ServerConfig(port=0, grace_seconds=0.5, max_streams=1)
    with BackgroundServer(GuessEnvironment, config) as server:

        async def main():
            async with EnvPool([server.address]) as holder, EnvPool([server.address]) as refused:
                held = await holder.reset("guess", "test-easy-0", transport="multiplex")  # the one open stream
                for _ in range(3):  # every try, on a fresh stream each time
                    with pytest.raises(EpisodeAborted) as err:
                        await refused.reset("guess", "test-easy-1", transport="multiplex")
                    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert "streams" in err.value.message
                # a raw stream reads the refusal as a reply to its first message, then the stream's status
                with grpc.insecure_channel(server.address) as channel:
                    ops = [pb.MultiplexOp(slot=s, reset=pb.ResetRequest(task_id="test-easy-1")) for s in (1, 2)]
                    call = pb_grpc.EnvironmentServiceStub(channel).Multiplex(iter([pb.MultiplexRequest(ops=ops)]))
                    replies = []
                    with pytest.raises(grpc.RpcError) as ended:
                        replies.extend(call)
                    assert [(r.slot, r.error.code) for m in replies for r in m.results] == [(1, 8), (2, 8)]
                    assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert (await held.step("guess 1")).turn == 1
                await held.close()

        asyncio.run(main())


def test_metrics_need_the_bearer_token_when_auth_is_on():
    port = free_port()
    config = ServerConfig(port=0, grace_seconds=0.5, metrics_port=port, auth_token="s3cret")
    url = f"http://127.0.0.1:{port}/metrics"
    with BackgroundServer(GuessEnvironment, config):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=5)
        assert err.value.code == 401
        wrong = urllib.request.Request(url, headers={"Authorization": "Bearer guess"})
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(wrong, timeout=5)
        right = urllib.request.Request(url, headers={"Authorization": "Bearer s3cret"})
        assert "gymwire_sessions_open" in urllib.request.urlopen(right, timeout=5).read().decode()


def health_status(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def test_sigterm_lets_open_episodes_finish_and_refuses_new_ones(tmp_path):
    with LocalServer("guess", "--grace", "60", log_path=tmp_path / "server.log") as server:
        client = EnvClient(server.address)
        episodes = [client.reset(f"test-hard-{i}") for i in range(12)]
        for episode in episodes:
            episode.step("guess 1")
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while health_status(server.address) != "NOT_SERVING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(GymwireError) as err:
            client.reset("test-hard-0")
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
        for episode in episodes:  # every open episode plays to its end
            while not episode.done:
                episode.step(episode.expert_action() or "guess 1")
            assert episode.observation.success
            episode.close()
        client.close()
        assert server.proc.wait(30) == 0  # exits once the last episode closed, long before the grace ends


@pytest.mark.parametrize("transport", ["unary", "session"])
def test_a_full_server_is_back_pressure_never_a_plain_error(transport):
    config = ServerConfig(port=0, grace_seconds=0.5, limits=ServiceLimits(max_sessions=2))
    with BackgroundServer(GuessEnvironment, config) as full, BackgroundServer(GuessEnvironment, config) as spare:

        async def main():
            async with EnvPool([full.address]) as pool:
                held = [await pool.reset("guess", "test-easy-0", transport=transport) for _ in range(2)]
                with pytest.raises(EpisodeAborted) as err:
                    await pool.reset("guess", "test-easy-0", transport=transport)
                assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
                async with EnvPool([full.address, spare.address]) as both:
                    for _ in range(2):  # the full replica is passed over, not marked down
                        episode = await both.reset("guess", "test-easy-0", transport=transport)
                        assert episode.client.address == spare.address
                        await episode.close()
                for episode in held:
                    await episode.close()

        asyncio.run(main())


def test_pool_reset_during_a_drain_is_an_abort(tmp_path):
    with LocalServer("guess", "--grace", "60", log_path=tmp_path / "server.log") as server:

        async def main():
            async with EnvPool([server.address]) as pool:
                keep = await pool.reset("guess", "test-hard-0")
                server.proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + 10
                while health_status(server.address) != "NOT_SERVING":
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
                for transport in ("unary", "session"):
                    with pytest.raises(EpisodeAborted) as err:
                        await pool.reset("guess", "test-hard-1", transport=transport)
                    assert err.value.code == grpc.StatusCode.UNAVAILABLE
                await keep.close()

        asyncio.run(main())
        assert server.proc.wait(30) == 0


@pytest.mark.parametrize("transport", ["unary", "session"])
def test_a_killed_server_reads_as_unavailable(tmp_path, transport):
    with LocalServer("guess", log_path=tmp_path / "server.log") as server:

        async def main():
            async with EnvPool([server.address], ChannelOptions(timeout=10)) as pool:
                episodes = [await pool.reset("guess", f"test-hard-{i}", transport=transport) for i in range(20)]
                for episode in episodes:
                    await episode.step("guess 1")
                server.proc.kill()
                server.proc.wait(10)
                codes = set()
                for result in await asyncio.gather(*(e.step("guess 2") for e in episodes), return_exceptions=True):
                    assert isinstance(result, EpisodeAborted), result
                    codes.add(result.code)
                assert codes == {grpc.StatusCode.UNAVAILABLE}
                for episode in episodes:
                    await episode.close()

        asyncio.run(main())


def test_open_connections_are_capped():
    config = ServerConfig(port=0, grace_seconds=0.5, max_connections=2)
    with BackgroundServer(GuessEnvironment, config) as server:
        clients = [EnvClient(server.address, ChannelOptions(timeout=5)) for _ in range(3)]
        try:
            assert clients[0].info().name == clients[1].info().name == "guess"
            with pytest.raises(GymwireError) as err:
                clients[2].info()
            assert err.value.code == grpc.StatusCode.UNAVAILABLE
            clients[0].close()
            deadline = time.monotonic() + 10
            while True:  # the freed connection slot takes the next client
                try:
                    assert clients[2].info(refresh=True).name == "guess"
                    break
                except GymwireError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
        finally:
            for client in clients[1:]:
                client.close()

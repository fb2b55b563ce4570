"""Bounds every server keeps when an environment or a client misbehaves: bad rewards, replies the protocol
cannot carry, abusive filters and ids, slow steps, and the caps on what one client may hold."""

from __future__ import annotations

import time
import tracemalloc

import grpc
import pytest

from gymwire.client import EnvClient, EpisodeAborted, GymwireError
from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.sdk.server import ServerConfig
from gymwire.env_servers.sdk.service import ServiceLimits
from gymwire.v1 import environment_pb2 as pb
from gymwire.v1 import environment_pb2_grpc as pb_grpc
from tests.faulty_env import FaultyEnvironment


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


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("reward", ["nan", "inf"])
def test_non_finite_reward_is_internal_and_drops_the_session(faulty_server, stream, reward):
    with EnvClient(faulty_server.address) as client:
        episode = client.reset("test-hard-0", stream=stream)
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


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_oversized_observation_is_internal_not_applied_and_lost(faulty_server, stream):
    with EnvClient(faulty_server.address) as client:
        episode = client.reset("test-hard-0", stream=stream)
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

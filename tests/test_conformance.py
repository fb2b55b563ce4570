"""The conformance suite passes on every registered environment's server and fails on deliberately broken ones."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest

from gymwire.env_servers.conformance import RULES, run_suite
from gymwire.env_servers.local import LocalServer
from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.registry import GROUP, available
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.sdk.errors import ServiceError
from gymwire.env_servers.sdk.server import ServerConfig
from gymwire.env_servers.sdk.service import EnvService, ServiceLimits
from gymwire.v1 import environment_pb2 as pb


@pytest.mark.parametrize("name", sorted(available()))
def test_every_registered_environment_conforms(name: str, tmp_path: Path) -> None:
    """Each `gymwire.environments` entry point, served by `gymwire serve NAME` with its default options."""
    (entry,) = entry_points(group=GROUP, name=name)
    try:
        entry.load()
    except ImportError as exc:
        pytest.skip(f"{name} needs its extra: {exc}")
    log = tmp_path / "server.log"
    # A small session cap keeps the capacity rule quick; everything else is the default server.
    with LocalServer(name, "--max-sessions", "64", log_path=log) as server:
        results = run_suite(server.address)
    assert [r.name for r in results] == [rule for rule, _ in RULES]
    failed = [(r.name, r.detail) for r in results if r.status == "fail"]
    assert not failed, log.read_text()[-4000:]


class StepsTwice(EnvService):
    """Ignores step_index: a retried step is applied again."""

    async def step(self, request):
        request.ClearField("step_index")
        return await super().step(request)


class WrongCodeForUnknownSession(EnvService):
    async def step(self, request):
        if not request.session_id.isalnum():
            raise ServiceError.internal("boom")
        return await super().step(request)


class AlwaysSendsValidActions(EnvService):
    async def reset(self, request):
        request.options.include_valid_actions = True
        return await super().reset(request)


class CloseAlwaysOpen(EnvService):
    def close(self, request):
        super().close(request)
        return pb.CloseResponse(was_open=True)


class NoCapacityLimit(EnvService):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sessions.max_sessions = 10**9  # the advertised limit is not enforced


class NonDeterministicReset(EnvService):
    counter = 0

    async def reset(self, request):
        session, response = await super().reset(request)
        NonDeterministicReset.counter += 1
        response.observation.text += f" ({NonDeterministicReset.counter})"
        return session, response


class NonFiniteRewards(EnvService):
    async def step(self, request):
        obs = pb.Observation()
        obs.CopyFrom(await super().step(request))
        obs.reward = float("nan")
        return obs


class PagesOverTheMessageLimit(EnvService):
    def list_tasks(self, request):
        reply = super().list_tasks(request)
        reply.tasks[0].metadata["notes"] = "x" * (5 * 1024 * 1024)
        return reply


class EchoesWholeIds(EnvService):
    async def step(self, request):
        if len(request.session_id) > 1000:
            raise ServiceError.not_found(f"unknown session {request.session_id!r}")
        return await super().step(request)


class StateKeyCountsTurns(EnvService):
    """Appends the turn to every state key: equal states after different numbers of turns get different keys."""

    async def step(self, request):
        obs = pb.Observation()
        obs.CopyFrom(await super().step(request))
        obs.state_key += f"@{obs.turn}"
        return obs


class StateKeyIgnoresTheState(EnvService):
    """Sends one key for every state, the last included."""

    async def reset(self, request):
        session, response = await super().reset(request)
        response.observation.state_key = "same"
        return session, response

    async def step(self, request):
        obs = pb.Observation()
        obs.CopyFrom(await super().step(request))
        obs.state_key = "same"
        return obs


BROKEN = [
    (StepsTwice, "duplicate step_index"),
    (WrongCodeForUnknownSession, "unknown session is NOT_FOUND"),
    (AlwaysSendsValidActions, "valid actions appear only when asked"),
    (CloseAlwaysOpen, "Close is idempotent"),
    (NoCapacityLimit, "beyond capacity"),
    (NonDeterministicReset, "same first observation"),
    (NonFiniteRewards, "finite number"),
    (PagesOverTheMessageLimit, "4 MiB"),
    (EchoesWholeIds, "errors stay short"),
    (StateKeyCountsTurns, "state keys follow the state"),
    (StateKeyIgnoresTheState, "state keys follow the state"),
]


@pytest.mark.parametrize(("service_cls", "rule_name"), BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_suite_catches_broken_server(service_cls, rule_name):
    config = ServerConfig(port=0, grace_seconds=0.5, limits=ServiceLimits(max_sessions=64))
    with BackgroundServer(GuessEnvironment, config, service_cls=service_cls) as server:
        results = {r.name: r for r in run_suite(server.address, only=None)}
    failing = [name for name, r in results.items() if r.status == "fail"]
    assert any(rule_name in name for name in failing), f"{rule_name!r} not among failures {failing}"


def test_state_key_rule_passes_on_keys_of_the_state_and_skips_servers_without_keys():
    class NoKeys(EnvService):
        async def step(self, request):
            obs = pb.Observation()
            obs.CopyFrom(await super().step(request))
            obs.ClearField("state_key")
            return obs

        async def reset(self, request):
            session, response = await super().reset(request)
            response.observation.ClearField("state_key")
            return session, response

    config = ServerConfig(port=0, grace_seconds=0.5, limits=ServiceLimits(max_sessions=64))
    for service_cls, status in ((EnvService, "pass"), (NoKeys, "skip")):
        with BackgroundServer(GuessEnvironment, config, service_cls=service_cls) as server:
            (result,) = run_suite(server.address, only="state keys follow the state")
        assert result.status == status, result.detail


def test_unreachable_server_fails():
    results = run_suite("127.0.0.1:9", timeout=1.0)
    assert [r.status for r in results] == ["fail"]

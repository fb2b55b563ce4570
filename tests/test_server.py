"""Server SDK behaviour beyond the conformance rules: failures, readiness, TTL, auth, TLS, metrics, drain."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import urllib.request

import grpc
import pytest

from gymwire.client import ChannelOptions, EnvClient, EpisodeAborted, GymwireError
from gymwire.env_servers.conformance import run_suite
from gymwire.env_servers.local import LocalServer, free_port
from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.reference.guess import GuessEpisode
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.sdk.server import ServerConfig
from gymwire.env_servers.sdk.service import ServiceLimits


class ExplodingEpisode(GuessEpisode):
    def step(self, text):
        if "boom" in text:
            raise RuntimeError("simulated bug in the environment")
        return super().step(text)


class ExplodingEnvironment(GuessEnvironment):
    def start(self, task):
        return ExplodingEpisode(task)


def test_env_exception_drops_only_that_session():
    with BackgroundServer(ExplodingEnvironment) as server, EnvClient(server.address) as client:
        healthy = client.reset("test-easy-0")
        broken = client.reset("test-easy-1")
        with pytest.raises(EpisodeAborted) as err:
            broken.step("boom")
        assert err.value.code == grpc.StatusCode.INTERNAL
        assert "simulated bug" in err.value.message and "dropped" in err.value.message
        with pytest.raises(EpisodeAborted) as gone:
            broken.step("guess 1")
        assert gone.value.code == grpc.StatusCode.NOT_FOUND
        assert healthy.step("guess 3").turn == 1  # everyone else keeps playing
        assert client.health()


class BadStateKeyEpisode(GuessEpisode):
    def state_key(self):
        return 7 if self.low_bound > 1 else super().state_key()  # not a string once a guess was too low


class BadStateKeyEnvironment(GuessEnvironment):
    def start(self, task):
        return BadStateKeyEpisode(task)


def test_state_keys_arrive_on_every_transport_and_a_bad_one_drops_the_session():
    turns = ["guess 99", "nonsense", "guess 99", "guess 1"]  # too high; invalid; the same bounds again
    with BackgroundServer(GuessEnvironment) as server, EnvClient(server.address) as client:
        for transport in ("unary", "session", "multiplex"):
            episode = client.reset("test-hard-3", transport=transport)
            keys = [episode.observation.state_key] + [episode.step(turn).state_key for turn in turns]
            assert keys[:4] == ["1-100", "1-98", "1-98", "1-98"] and keys[4].startswith("2-"), transport
    with BackgroundServer(BadStateKeyEnvironment) as server, EnvClient(server.address) as client:
        episode = client.reset("test-hard-3")
        assert episode.observation.state_key == "1-100" and episode.step("guess 99").state_key == "1-98"
        with pytest.raises(EpisodeAborted) as err:
            episode.step("guess 1")
        assert err.value.code == grpc.StatusCode.INTERNAL and "state_key() returned int" in err.value.message


def test_unavailable_while_loading_over_the_wire():
    proc = LocalServer("tests.slow_env:SlowLoadingEnvironment", "-o", "delay=3")
    try:
        client = EnvClient(proc.address, ChannelOptions(timeout=2))
        deadline = time.monotonic() + 10
        seen_unavailable = False
        while time.monotonic() < deadline:
            try:
                client.info(refresh=True)
                break
            except GymwireError as exc:
                assert exc.code == grpc.StatusCode.UNAVAILABLE
                seen_unavailable = seen_unavailable or "loading" in exc.message
                assert not client.health(timeout=1)
                time.sleep(0.2)
        assert seen_unavailable
        assert client.health()
        client.close()
    finally:
        proc.stop()


def test_idle_sessions_expire():
    config = ServerConfig(port=0, grace_seconds=0.5, sweep_seconds=0.1, limits=ServiceLimits(session_ttl_seconds=0.3))
    with BackgroundServer(GuessEnvironment, config) as server, EnvClient(server.address) as client:
        episode = client.reset("test-easy-0")
        time.sleep(0.8)
        with pytest.raises(EpisodeAborted) as err:
            episode.step("guess 1")
        assert err.value.code == grpc.StatusCode.NOT_FOUND


def test_bearer_token():
    config = ServerConfig(port=0, grace_seconds=0.5, auth_token="s3cret")
    with BackgroundServer(GuessEnvironment, config) as server:
        with EnvClient(server.address) as anonymous:
            assert anonymous.health()  # probes need no token
            with pytest.raises(GymwireError) as err:
                anonymous.info()
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
        with EnvClient(server.address, ChannelOptions(token="wrong")) as wrong, pytest.raises(GymwireError):
            wrong.info()
        with EnvClient(server.address, ChannelOptions(token="s3cret")) as client:
            assert client.info().name == "guess"
        results = run_suite(server.address, token="s3cret")
        assert not [r for r in results if r.status == "fail"]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    config = ServerConfig(port=0, grace_seconds=0.5, tls_cert=cert, tls_key=key)
    with BackgroundServer(GuessEnvironment, config) as server:
        options = ChannelOptions(tls=True, root_certificates=cert.read_bytes())
        with EnvClient(server.address, options) as client:
            assert client.reset("test-easy-0").step("guess 2").turn == 1


def test_metrics_endpoint():
    port = free_port()
    config = ServerConfig(port=0, grace_seconds=0.5, metrics_port=port)
    with BackgroundServer(GuessEnvironment, config) as server, EnvClient(server.address) as client:
        episode = client.reset("test-easy-0")
        for _ in range(3):
            episode.step("guess 0")  # out of range: a wrong turn that never ends the episode
        with pytest.raises(GymwireError):
            client.reset("no-such-task")
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'gymwire_steps_total{env="guess"} 3.0' in text
    assert 'gymwire_sessions_open{env="guess"} 1.0' in text
    assert 'gymwire_errors_total{code="INVALID_ARGUMENT",env="guess"} 1.0' in text
    assert "gymwire_step_seconds_bucket" in text


def test_sigterm_drains_and_exits_cleanly(tmp_path):
    log = tmp_path / "server.log"
    with LocalServer("guess", log_path=log, env_vars={"GYMWIRE_LOG_LEVEL": "INFO"}) as server:
        client = EnvClient(server.address)
        client.reset("test-easy-0").step("guess 1")
        client.close()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
        assert "draining" in log.read_text()


def test_workers_share_one_port():
    with LocalServer("guess", "--workers", "2") as server:
        seen = set()
        clients = [EnvClient(server.address) for _ in range(12)]
        try:
            for client in clients:  # each client is its own connection; the kernel spreads them
                episode = client.reset("test-hard-0")
                seen.add(episode.session_id.split("-")[0])
                assert episode.step("guess 50").turn == 1
        finally:
            for client in clients:
                client.close()
        assert seen == {"w0", "w1"}  # 12 connections: all on one worker has odds of 1 in 2048
        results = run_suite(server.address)
        assert not [r for r in results if r.status == "fail"]

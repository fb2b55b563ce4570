"""Fault barrage against real servers on 127.0.0.1: nothing may crash, hang or score an infrastructure fault.

Each scenario starts `gymwire serve` child processes on loopback ports and prints its figures:

- barrage: malformed, oversized and hostile requests to every method (random bytes, non-UTF-8 text,
  30,000-character ids, 100 KB filters, huge page sizes, bad step indices, garbage on the Session
  stream), with and without a bearer token. Every reply must carry a code the contract names for it.
- leak: ListTasks with unique 100 KB filters, then abandoned sessions (unary and streams) left to
  expire; the server's RSS before and after must stay flat.
- kill: two replicas, concurrent episodes through one EnvPool, kill -9 of one mid-rollout. Every
  episode is scored or aborted (retried once on the survivor, as the trainer does); never an error.
- drain: two replicas, SIGTERM to one mid-rollout with a long --grace; its open episodes finish.
- full: 1,000 concurrent episodes against a server that holds 200 sessions and streams: the rest are
  back-pressure (the pool waits, then the episode is aborted as RESOURCE_EXHAUSTED), never an error.
- nan: an environment that returns a NaN reward; the episode is aborted (INTERNAL), never scored.

    python -m bench.faults                           # the full barrage (about 2-4 minutes here)
    python -m bench.faults --scale 0.1 --only barrage,kill

All scenarios share one event loop: gRPC's asyncio layer is not meant to outlive a closed loop.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench import status_kb, write_rows
from gymwire.client import AsyncEnvClient, ChannelOptions, EnvPool, EpisodeAborted
from gymwire.env_servers.local import LocalServer, free_port
from gymwire.v1 import environment_pb2 as pb

SERVICE = "gymwire.v1.EnvironmentService"
C = grpc.StatusCode
# Codes a request may legitimately get: an answer, or the failure the contract names for bad input.
ANSWERS = {C.OK, C.INVALID_ARGUMENT, C.NOT_FOUND, C.FAILED_PRECONDITION}


# --- barrage ---------------------------------------------------------------------------------


@dataclass
class Probe:
    method: str
    payload: bytes
    allowed: frozenset[grpc.StatusCode]
    kind: str


def _probes(rng: random.Random, session_id: str) -> Iterator[Probe]:
    """An endless mix of hostile requests; `session_id` is a live session of the server."""
    huge = "z" * 30_000
    answers = frozenset(ANSWERS)
    resets = frozenset(ANSWERS | {C.RESOURCE_EXHAUSTED})  # a full server is an answer to Reset
    methods = ["GetInfo", "ListTasks", "Reset", "Step", "ValidActions", "ExpertAction", "Close"]
    makers: list[Callable[[], Probe]] = [
        lambda: Probe(
            rng.choice(methods), rng.randbytes(rng.randrange(1, 300)), resets, "random bytes"
        ),  # parses or not; either way a named code
        lambda: Probe("Step", pb.StepRequest(session_id=huge, action="x").SerializeToString(), answers, "huge id"),
        lambda: Probe("Reset", pb.ResetRequest(task_id=huge).SerializeToString(), answers, "huge task id"),
        lambda: Probe(
            "ListTasks", pb.ListTasksRequest(page_token=huge).SerializeToString(), answers, "huge page token"
        ),
        lambda: Probe(
            "ListTasks",
            pb.ListTasksRequest(split=f"{rng.random()}" + "s" * 100_000).SerializeToString(),
            answers,
            "100 KB filter",
        ),
        lambda: Probe(
            "ListTasks",
            pb.ListTasksRequest(page_size=rng.choice([1, 2**31 - 1, 0])).SerializeToString(),
            answers,
            "odd page size",
        ),
        lambda: Probe(
            "Reset",
            pb.ResetRequest(sample=pb.TaskSample(split="x" * 50_000, seed=rng.randrange(2**63))).SerializeToString(),
            answers,
            "huge sample filter",
        ),
        lambda: Probe(
            "Reset",
            pb.ResetRequest(task_id="test-easy-0", options=pb.ResetOptions(max_turns=2**31 - 1)).SerializeToString(),
            answers,
            "huge max_turns",
        ),
        lambda: Probe(
            "Step",
            pb.StepRequest(session_id=session_id, action="a" * 20_000).SerializeToString(),
            answers,
            "oversized action",
        ),
        lambda: Probe(
            "Step",
            pb.StepRequest(
                session_id=session_id, action="guess 1", step_index=rng.randrange(5, 2**32)
            ).SerializeToString(),
            answers,
            "bad step index",
        ),
        lambda: Probe(
            "Step",
            bytes([0x0A, len(session_id)]) + session_id.encode() + b"\x12\x04\xff\xfe\xc3(",
            answers,
            "non-UTF-8 action",
        ),
        lambda: Probe("ValidActions", pb.ValidActionsRequest(session_id=huge).SerializeToString(), answers, "huge id"),
        lambda: Probe("Close", pb.CloseRequest(session_id=huge).SerializeToString(), answers, "huge id"),
    ]
    while True:
        yield rng.choice(makers)()


@dataclass
class BarrageResult:
    requests: int = 0
    wrong_codes: int = 0
    crashes: int = 0
    codes: Counter = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)


async def _barrage(address: str, count: int, token: str | None, seed: int, concurrency: int = 32) -> BarrageResult:
    rng = random.Random(seed)
    result = BarrageResult()
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(address, options) as channel:
        calls = {
            m: channel.unary_unary(f"/{SERVICE}/{m}", request_serializer=None, response_deserializer=None)
            for m in ("GetInfo", "ListTasks", "Reset", "Step", "ValidActions", "ExpertAction", "Close")
        }
        reset = pb.ResetRequest(task_id="test-easy-0").SerializeToString()
        session_id = pb.ResetResponse.FromString(await calls["Reset"](reset, metadata=metadata, timeout=10)).session_id
        probes = _probes(rng, session_id)
        queue: asyncio.Queue[Probe | None] = asyncio.Queue()
        for _ in range(count):
            queue.put_nowait(next(probes))

        async def worker() -> None:
            while not queue.empty():
                probe = queue.get_nowait()
                assert probe is not None
                try:
                    await calls[probe.method](probe.payload, metadata=metadata, timeout=30)
                    code = C.OK
                except grpc.RpcError as exc:
                    code = exc.code()
                    details = exc.details() or ""
                else:
                    details = ""
                result.requests += 1
                result.codes[code.name] += 1
                if code not in probe.allowed:
                    result.wrong_codes += 1
                    if len(result.wrong) < 10:
                        result.wrong.append(f"{probe.method} ({probe.kind}): {code.name} {details[:120]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        # Garbage on the Session stream: each request is answered in-band, the stream survives.
        stream = channel.stream_stream(f"/{SERVICE}/Session", request_serializer=None, response_deserializer=None)
        call = stream(metadata=metadata, timeout=60)
        for _ in range(min(200, count // 10 + 1)):
            await call.write(rng.randbytes(rng.randrange(1, 200)))
            reply = pb.SessionResponse.FromString(await call.read())
            result.requests += 1
            code = C.OK if reply.WhichOneof("result") != "error" else _CODES[reply.error.code]
            result.codes[code.name] += 1
            if code not in ANSWERS | {C.RESOURCE_EXHAUSTED}:
                result.wrong_codes += 1
                result.wrong.append(f"Session (random bytes): {code.name} {reply.error.message[:120]}")
        await call.done_writing()
    return result


_CODES = {code.value[0]: code for code in grpc.StatusCode}


async def _unauthenticated(address: str, count: int, seed: int) -> BarrageResult:
    """Without the token every environment call is UNAUTHENTICATED, whatever the request holds."""
    rng = random.Random(seed)
    result = BarrageResult()
    async with grpc.aio.insecure_channel(address) as channel:
        for i in range(count):
            method = rng.choice(["GetInfo", "ListTasks", "Reset", "Step", "Close"])
            call = channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=None, response_deserializer=None)
            metadata = None if i % 2 else (("authorization", "Bearer " + "w" * rng.randrange(1, 5000)),)
            try:
                await call(rng.randbytes(rng.randrange(0, 200)), metadata=metadata, timeout=10)
                code = C.OK
            except grpc.RpcError as exc:
                code = exc.code()
            result.requests += 1
            result.codes[code.name] += 1
            if code != C.UNAUTHENTICATED:
                result.wrong_codes += 1
                result.wrong.append(f"{method} without the token: {code.name}")
    return result


async def barrage(count: int, seed: int = 0) -> dict:
    """`count` hostile requests to an open server, then a tenth as many to one with auth and metrics."""
    with LocalServer("guess", "--max-sessions", "20000") as server:
        before = status_kb(server.proc.pid, "VmRSS")
        open_result = await _barrage(server.address, count, None, seed)
        crashed = server.proc.poll() is not None
        after = status_kb(server.proc.pid, "VmRSS") if not crashed else 0
    metrics_port = free_port()
    with LocalServer("guess", "--auth-token", "s3cret", "--metrics-port", str(metrics_port)) as server:
        authed = await _barrage(server.address, count // 10, "s3cret", seed + 1)
        denied = await _unauthenticated(server.address, count // 10, seed + 2)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
            metrics_open = True
        except urllib.error.HTTPError as exc:
            metrics_open = exc.code != 401
        crashed = crashed or server.proc.poll() is not None
    wrong = open_result.wrong + authed.wrong + denied.wrong
    return {
        "scenario": "barrage",
        "requests": open_result.requests + authed.requests + denied.requests,
        "crashes": int(crashed),
        "wrong_codes": open_result.wrong_codes + authed.wrong_codes + denied.wrong_codes + int(metrics_open),
        "codes": dict(open_result.codes + authed.codes + denied.codes),
        "rss_before_mb": before / 1024,
        "rss_after_mb": after / 1024,
        "metrics_without_token": "served" if metrics_open else "401",
        "examples": wrong[:10],
    }


# --- leak cycle ------------------------------------------------------------------------------


async def _abuse(address: str, filters: int, sessions: int, cycle: int) -> None:
    async with AsyncEnvClient(address, ChannelOptions(timeout=60)) as client:
        semaphore = asyncio.Semaphore(16)

        async def list_one(i: int) -> None:
            async with semaphore:
                await client.list_tasks(split=f"{cycle}-{i}-" + "f" * 100_000)  # never asked before

        await asyncio.gather(*(list_one(i) for i in range(filters)))

        async def abandon(i: int) -> None:
            async with semaphore:
                episode = await client.reset(f"test-hard-{i % 50}", transport="session" if i % 4 == 0 else "unary")
                await episode.step("guess 50")  # and never closed: streams end with the channel

        await asyncio.gather(*(abandon(i) for i in range(sessions)))


async def leak(filters: int, sessions: int, ttl: float = 2.0) -> dict:
    """The abuse cycle twice: the first sets the allocator's high-water mark (freed memory stays with the
    process), so a leak shows as growth over the second cycle."""
    with LocalServer("guess", "--session-ttl", str(ttl), "--max-sessions", str(sessions + 100)) as server:
        pid = server.proc.pid
        start = status_kb(pid, "VmRSS")
        rss = []  # kB
        for cycle in range(2):
            await _abuse(server.address, filters, sessions, cycle)
            rss.append(status_kb(pid, "VmRSS"))
            await asyncio.sleep(ttl + 6)  # abandoned sessions expire, the sweep (every 5 s) evicts them
            rss.append(status_kb(pid, "VmRSS"))
        crashed = server.proc.poll() is not None
    return {
        "scenario": "leak",
        "requests": 2 * (filters + 2 * sessions),
        "crashes": int(crashed),
        "rss_start_mb": start / 1024,
        "rss_after_cycle_1_mb": rss[1] / 1024,
        "rss_after_cycle_2_mb": rss[3] / 1024,
        "growth_mb": (rss[3] - rss[1]) / 1024,
    }


# --- episodes under kill -9 and drain --------------------------------------------------------


@dataclass
class RolloutResult:
    scored: int = 0
    aborted: int = 0  # after the retry
    retried: int = 0
    errors: int = 0  # anything but a score or an abort: this would end a rollout step
    abort_codes: Counter = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)


async def _play(pool: EnvPool, task_id: str, stream: bool, pace: float, result: RolloutResult) -> None:
    for attempt in range(2):  # one retry on another replica, as the trainer does
        episode = None
        try:
            episode = await pool.reset("guess", task_id, transport="session" if stream else "unary")
            while not episode.done:
                await asyncio.sleep(pace)
                action = await episode.expert_action()
                await episode.step(action or "guess 1")
            result.scored += 1
            return
        except EpisodeAborted as exc:
            result.abort_codes[exc.code.name] += 1
            if attempt == 0:
                result.retried += 1
                continue
            result.aborted += 1
            return
        except Exception as exc:  # noqa: BLE001 - counted: this is what the barrage looks for
            result.errors += 1
            if len(result.error_examples) < 5:
                result.error_examples.append(repr(exc)[:200])
            return
        finally:
            if episode is not None:
                await episode.close()


async def _rollout(
    addresses: list[str], episodes: int, pace: float, fault: Callable[[], None], fault_after: float
) -> RolloutResult:
    result = RolloutResult()
    async with EnvPool(addresses, ChannelOptions(timeout=20), cooloff=60) as pool:
        tasks = [
            asyncio.create_task(_play(pool, f"test-hard-{i % 50}", i % 2 == 0, pace, result)) for i in range(episodes)
        ]
        await asyncio.sleep(fault_after)
        fault()
        await asyncio.gather(*tasks)
    return result


def _rollout_row(scenario: str, result: RolloutResult, episodes: int, **extra) -> dict:
    return {
        "scenario": scenario,
        "episodes": episodes,
        "scored": result.scored,
        "aborted": result.aborted,
        "retried": result.retried,
        "errors": result.errors,
        "abort_codes": dict(result.abort_codes),
        "examples": result.error_examples,
        **extra,
    }


async def kill(episodes: int) -> dict:
    with LocalServer("guess") as survivor, LocalServer("guess") as victim:
        result = await _rollout([survivor.address, victim.address], episodes, 0.1, victim.proc.kill, fault_after=0.3)
        crashed = survivor.proc.poll() is not None
    return _rollout_row("kill -9", result, episodes, crashes=int(crashed))


async def drain(episodes: int) -> dict:
    with LocalServer("guess") as other, LocalServer("guess", "--grace", "60") as drained:

        def sigterm() -> None:
            drained.proc.send_signal(signal.SIGTERM)

        started = time.monotonic()
        result = await _rollout([other.address, drained.address], episodes, 0.1, sigterm, fault_after=0.3)
        code = drained.proc.wait(60)
        exit_s = time.monotonic() - started
    return _rollout_row("SIGTERM drain", result, episodes, exit_code=code, drained_exit_s=exit_s)


async def full(episodes: int, capacity: int) -> dict:
    """More concurrent episodes than the server holds: the rest meet back-pressure, never an error."""
    with LocalServer("guess", "--max-sessions", str(capacity), "--max-streams", str(capacity)) as server:
        result = await _rollout([server.address], episodes, 0.05, lambda: None, fault_after=0.0)
        crashed = server.proc.poll() is not None
    return _rollout_row("over capacity", result, episodes, capacity=capacity, crashes=int(crashed))


async def _nan_episodes(address: str, episodes: int) -> tuple[int, int, Counter]:
    scored, non_finite, codes = 0, 0, Counter()
    async with EnvPool([address]) as pool:
        for i in range(episodes):
            episode = await pool.reset("guess", f"test-hard-{i}", transport="session" if i % 2 == 0 else "unary")
            try:
                obs = await episode.step("nan" if i % 2 else "inf")
                scored += 1
                non_finite += not math.isfinite(obs.reward)
            except EpisodeAborted as exc:
                codes[exc.code.name] += 1
            finally:
                await episode.close()
    return scored, non_finite, codes


async def nan(episodes: int) -> dict:
    with LocalServer("bench.faulty_env:FaultyEnvironment") as server:
        scored, non_finite, codes = await _nan_episodes(server.address, episodes)
        crashed = server.proc.poll() is not None
    return {
        "scenario": "non-finite reward",
        "episodes": episodes,
        "scored": scored,
        "non_finite_rewards_received": non_finite,
        "aborted": sum(codes.values()),
        "abort_codes": dict(codes),
        "crashes": int(crashed),
    }


SCENARIOS = ("barrage", "leak", "kill", "drain", "full", "nan")


async def run(scale: float = 1.0, only: tuple[str, ...] = SCENARIOS, seed: int = 0) -> list[dict]:
    n = lambda full: max(10, int(full * scale))  # noqa: E731 - sizes at this scale
    rows = []
    if "barrage" in only:
        rows.append(await barrage(n(20_000), seed))
    if "leak" in only:
        rows.append(await leak(n(1000), n(4000)))
    if "kill" in only:
        rows.append(await kill(n(200)))
    if "drain" in only:
        rows.append(await drain(n(100)))
    if "full" in only:
        rows.append(await full(n(1000), n(200)))
    if "nan" in only:
        rows.append(await nan(n(20)))
    return rows


def report(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        figures = ", ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k not in ("scenario", "examples"))
        lines.append(f"{row['scenario']:18s} {figures}")
        lines.extend(f"{'':18s}   e.g. {e}" for e in row.get("examples", []))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full sizes")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/faults.json"))
    args = parser.parse_args()
    started = time.monotonic()
    rows = asyncio.run(run(args.scale, tuple(args.only.split(",")), args.seed))
    print(f"fault barrage on 127.0.0.1 ({os.cpu_count()} CPUs, {time.monotonic() - started:.0f} s)")
    print(report(rows))
    write_rows(args, rows)


if __name__ == "__main__":
    main()

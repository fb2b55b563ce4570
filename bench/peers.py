"""gymwire against OpenEnv, side by side in one run: steps/s, latency, episode start, CPU and memory.

Both sides serve the same trivial environment (bench/echo_env.py, bench/openenv_echo.py: reset ->
200 characters, step -> 1024 characters echoing the action, the episode ends at step 50), so the
numbers measure the protocols and their stacks. Each point gets a fresh server; its sessions are
opened, loaded for a warm-up, then measured over a window; clients are separate processes (1 or 2)
that play every session as fast as the server answers, starting the next episode when one ends.
Sessions start spread over the first half of the warm-up, so their episodes end at different times
as a trainer's do (`--lockstep`: all at once, so every episode ends in the same turn, a burst of
1024 starts; that turn is slower than a step turn on both sides).

  gymwire-multiplex   EnvPool as a trainer uses it: all episodes share the Multiplex stream
  gymwire-stream      one Session stream per episode (a new stream per episode)
  gymwire-unary       Reset / Step / Close calls
  openenv-best        OpenEnv with an async environment (reset_async/step_async) on uvloop + httptools
  openenv-installed   OpenEnv with a plain environment (its thread pool) on uvicorn's own defaults

Fields per point: steps/s (steps completed in the window), step latency p50/p99, episode-start
latency p50/p99 (Close + Reset for gymwire, Reset for OpenEnv), errors, server and client CPU per
step (user + system of every process and thread), peak RSS of server and clients, and for a
multi-process server each worker's share of the steps. Ratios are to openenv-best of the same rep and
session count, measured minutes apart at most, so machine noise hits both alike.

At 1024 sessions both sides need the whole machine (gymwire: ~20 us of server and ~17 us of client
CPU per step), so whatever else runs decides the numbers more than at 1 session. Beside a training
run at normal priority (this benchmark at nice 19) one afternoon's points spread over gymwire 7,400-
46,000 and OpenEnv 2,300-7,000 steps/s, ratios 3.3-12.6x, against 4.8-5.8x in peers.json's quieter
run. A harness that finds 2.4-2.7x (gymwire 20,000-21,500, OpenEnv 7,900-8,400) sees OpenEnv as
peers.json does and gymwire as a loaded run does. What lowers gymwire's point alone: load while that
point runs (points run a minute apart), a client that does more per step than this one (the client is
half of gymwire's CPU at 1024 sessions), a client per session instead of one EnvPool (a stream per
session, no batching: gymwire-stream's numbers). Compare ratios within a run, over reps, and read
each point's load_average.

    python -m bench.peers                      # the full comparison (~20 min on 2 cores)
    python -m bench.peers --quick              # smoke run (~1 min)
    python -m bench.peers --sessions 1024 --variants gymwire-multiplex,openenv-best --reps 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import ROOT, cpu_seconds, percentile, print_targets, running, status_kb, write_json
from gymwire.env_servers.local import free_port

DEFAULT_OUT = ROOT / "bench" / "results" / "peers.json"
ACTION = "Thought: the room echoes. Action: say hello to the echo and listen"
GYMWIRE_VARIANTS = ("gymwire-multiplex", "gymwire-stream", "gymwire-unary")
OPENENV_VARIANTS = ("openenv-best", "openenv-installed")
BASELINE = "openenv-best"
TARGET_SESSIONS = 1024
MAX_REOPENS = 3


@dataclass(frozen=True)
class Point:
    variant: str
    sessions: int
    clients: int = 1  # client processes; sessions are split among them
    workers: int = 1  # server processes (gymwire --workers)


@dataclass
class Result:
    variant: str
    sessions: int
    clients: int
    workers: int
    rep: int
    steps: int = 0
    seconds: float = 0.0
    steps_per_s: float = 0.0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    start_p50_ms: float = float("nan")  # episode start: Close + Reset (gymwire), Reset (OpenEnv)
    start_p99_ms: float = float("nan")
    starts: int = 0
    server_us_per_step: float | None = None
    client_us_per_step: float | None = None
    server_peak_rss_mib: float | None = None
    client_peak_rss_mib: float | None = None
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    worker_shares: dict[str, float] = field(default_factory=dict)
    x_best_steps: float | None = None  # steps/s over openenv-best's
    p99_vs_best: float | None = None  # p99 over openenv-best's (< 1: lower)
    load_average: float = 0.0


# --------------------------------------------------------------------------------------- processes


def server_argv(point: Point, port: int) -> list[str]:
    if point.variant.startswith("gymwire"):
        argv = [sys.executable, "-m", "gymwire.cli.main", "serve", "bench.echo_env:EchoEnvironment"]
        argv += ["--port", str(port), "--max-sessions", "8192", "--grace", "1", "--log-format", "text"]
        return argv + (["--workers", str(point.workers)] if point.workers > 1 else [])
    best = point.variant == "openenv-best"
    app = "bench.openenv_echo:app_async" if best else "bench.openenv_echo:app_sync"
    argv = [sys.executable, "-m", "uvicorn", app, "--app-dir", str(ROOT), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--loop", "uvloop", "--http", "httptools"] if best else ["--loop", "asyncio", "--http", "h11"]
    return argv + ["--ws", "websockets", "--no-access-log", "--log-level", "warning", "--backlog", "4096"]


def _tree(pid: int) -> list[Any]:
    import psutil

    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    return []


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, its threads and its child processes (server workers)."""
    total = 0.0
    for proc in _tree(pid):
        with contextlib.suppress(Exception):
            total += cpu_seconds(proc.pid)
    return total


def tree_peak_rss_mib(pid: int) -> float:
    """Peak resident memory (VmHWM) summed over a process and its children."""
    return sum(status_kb(proc.pid, "VmHWM") for proc in _tree(pid)) / 1024


def wait_ready(point: Point, port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{point.variant} server exited with {proc.returncode}")
        with contextlib.suppress(Exception):
            if point.variant.startswith("gymwire"):
                import grpc
                from grpc_health.v1 import health_pb2, health_pb2_grpc

                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    time.sleep(0.5 if point.workers > 1 else 0)  # the other workers load too
                    return
            else:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    if r.status == 200:
                        return
        time.sleep(0.1)
    raise TimeoutError(f"{point.variant} server not ready within {timeout:.0f} s")


# --------------------------------------------------------------------------------------- clients


class GymwireDriver:
    """EnvPool, as the rollout engine uses it."""

    def __init__(self, address: str, transport: str):
        from gymwire.client import EnvPool

        self.pool = EnvPool([address])
        self.kwargs = {"multiplex": transport == "multiplex", "stream": transport == "stream"}

    async def connect(self) -> None:
        await self.pool.connect()

    async def open(self) -> Any:
        from bench.echo_env import TASK_ID

        return await self.pool.reset("echo", TASK_ID, **self.kwargs)

    async def step(self, episode: Any) -> bool:
        obs = await episode.step(ACTION)
        return obs.terminated or obs.truncated

    async def restart(self, episode: Any) -> Any:
        await episode.close()
        return await self.open()

    def worker(self, episode: Any) -> str:
        prefix, sep, _ = episode.session_id.partition("-")
        return prefix if sep and prefix.startswith("w") else "w0"

    async def close(self, episode: Any) -> None:
        await episode.close()

    async def aclose(self) -> None:
        await self.pool.close()


class OpenEnvDriver:
    """OpenEnv's own async client: one WebSocket (one server-side environment) per session."""

    def __init__(self, address: str):
        self.url = f"http://{address}"

    async def connect(self) -> None:
        return None

    async def open(self) -> Any:
        from bench.openenv_echo import EchoClient

        client = EchoClient(base_url=self.url, message_timeout_s=120.0)
        await client.connect()
        await client.reset()
        return client

    async def step(self, client: Any) -> bool:
        from bench.openenv_echo import EchoAction

        return (await client.step(EchoAction(message=ACTION))).done

    async def restart(self, client: Any) -> Any:
        await client.reset()
        return client

    def worker(self, client: Any) -> str:
        return "w0"

    async def close(self, client: Any) -> None:
        await client.close()

    async def aclose(self) -> None:
        return None


async def _bounded(coros: list[Any], limit: int = 128) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with gate:
            return await coro

    return await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)


async def client_main(variant: str, address: str, sessions: int) -> dict[str, Any]:
    """One client process: open the sessions, say ready, read the window, play, report."""
    driver: Any = OpenEnvDriver(address) if variant.startswith("openenv") else GymwireDriver(address, variant[8:])
    await driver.connect()
    opened = await _bounded([driver.open() for _ in range(sessions)])
    errors = [repr(s) for s in opened if isinstance(s, BaseException)]
    live = [s for s in opened if not isinstance(s, BaseException)]
    print("ready", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    start, end, spread = (float(x) for x in line.split())
    stagger = spread * max(0.0, start - time.time())
    latencies: list[float] = []
    starts: list[float] = []
    shares: Counter[str] = Counter()
    stop = False
    clock = time.time

    async def play(index: int) -> None:
        if stagger:  # sessions start spread over the warm-up, so their episodes end at different times
            await asyncio.sleep(stagger * index / len(live))
        reopens = 0
        while not stop:
            try:
                began = clock()
                ended = await driver.step(live[index])
                now = clock()
                if start <= now <= end:
                    latencies.append(now - began)
                    shares[driver.worker(live[index])] += 1
                if ended:
                    live[index] = await driver.restart(live[index])
                    done = clock()
                    if start <= done <= end:
                        starts.append(done - now)
            except Exception as exc:  # counted; the session is replaced
                errors.append(repr(exc)[:200])
                reopens += 1
                if reopens > MAX_REOPENS or stop:
                    return
                with contextlib.suppress(Exception):
                    await driver.close(live[index])
                with contextlib.suppress(Exception):
                    live[index] = await driver.open()

    tasks = [asyncio.ensure_future(play(i)) for i in range(len(live))]
    await asyncio.sleep(max(0.0, start - clock()))
    cpu0 = time.process_time()
    await asyncio.sleep(max(0.0, end - clock()))
    cpu1 = time.process_time()
    stop = True
    await asyncio.wait(tasks, timeout=30)
    for task in tasks:
        task.cancel()
    await _bounded([driver.close(s) for s in live])
    await driver.aclose()
    return {
        "latencies": latencies,
        "starts": starts,
        "cpu": cpu1 - cpu0,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "errors": errors,
        "shares": dict(shares),
    }


def run_client_process(argv: list[str]) -> int:
    variant, address, sessions, report_path = argv[0], argv[1], int(argv[2]), Path(argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * sessions + 256)), hard))
    from gymwire.env_servers.sdk.server import new_event_loop

    loop = new_event_loop()
    try:
        report = loop.run_until_complete(client_main(variant, address, sessions))
    finally:
        loop.close()
    report_path.write_text(json.dumps(report))  # a file, not stdout: libraries may print there too
    return 0


# --------------------------------------------------------------------------------------- one point


def measure(point: Point, rep: int, warmup: float, duration: float, lockstep: bool = False) -> Result:
    port = free_port()
    result = Result(point.variant, point.sessions, point.clients, point.workers, rep, load_average=os.getloadavg()[0])
    reports_dir = tempfile.TemporaryDirectory(prefix="peers-")
    with reports_dir, running(server_argv(point, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server:
        wait_ready(point, port, server)
        split = [point.sessions // point.clients + (i < point.sessions % point.clients) for i in range(point.clients)]
        with contextlib.ExitStack() as stack:
            clients = [
                stack.enter_context(
                    running(
                        [sys.executable, "-m", "bench.peers", "--client", point.variant, f"127.0.0.1:{port}", str(n)]
                        + [str(Path(reports_dir.name) / f"client-{i}.json")],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
                for i, n in enumerate(split)
            ]
            for client in clients:
                assert client.stdout is not None
                for line in client.stdout:  # anything a library prints before it is skipped
                    if line.strip() == "ready":
                        break
                else:
                    raise RuntimeError(f"{point.variant}: a client process failed to open its sessions")
            start = time.time() + warmup
            end = start + duration
            for client in clients:
                assert client.stdin is not None
                client.stdin.write(f"{start} {end} {0.0 if lockstep else 0.5}\n")
                client.stdin.flush()
            time.sleep(max(0.0, start - time.time()))
            cpu0 = tree_cpu_seconds(server.pid)
            time.sleep(max(0.0, end - time.time()))
            cpu1 = tree_cpu_seconds(server.pid)
            result.server_peak_rss_mib = round(tree_peak_rss_mib(server.pid), 1)
            reports = []
            for i, client in enumerate(clients):
                client.communicate(timeout=180)
                reports.append(json.loads((Path(reports_dir.name) / f"client-{i}.json").read_text()))
    latencies = [x for r in reports for x in r["latencies"]]
    starts = [x for r in reports for x in r["starts"]]
    errors = [e for r in reports for e in r["errors"]]
    shares: Counter[str] = Counter()
    for r in reports:
        shares.update(r["shares"])
    steps = len(latencies)
    result.steps, result.seconds = steps, duration
    result.steps_per_s = steps / duration
    result.p50_ms, result.p99_ms = 1000 * percentile(latencies, 0.5), 1000 * percentile(latencies, 0.99)
    result.start_p50_ms, result.start_p99_ms = 1000 * percentile(starts, 0.5), 1000 * percentile(starts, 0.99)
    result.starts = len(starts)
    if steps:
        result.server_us_per_step = 1e6 * (cpu1 - cpu0) / steps
        result.client_us_per_step = 1e6 * sum(r["cpu"] for r in reports) / steps
        if point.workers > 1:
            result.worker_shares = {w: round(n / steps, 3) for w, n in sorted(shares.items())}
    result.client_peak_rss_mib = round(max(r["rss_mib"] for r in reports), 1)
    result.errors, result.error_samples = len(errors), sorted(set(errors))[:3]
    return result


# --------------------------------------------------------------------------------------- report


def plan(sessions: list[int], variants: list[str], two_clients: bool, workers: bool) -> list[Point]:
    points = [Point(v, n) for n in sessions for v in variants]
    if two_clients and TARGET_SESSIONS in sessions:
        points += [Point(v, TARGET_SESSIONS, clients=2) for v in variants if v in (*GYMWIRE_VARIANTS[:2], BASELINE)]
    if workers and TARGET_SESSIONS in sessions and "gymwire-multiplex" in variants:
        points.append(Point("gymwire-multiplex", TARGET_SESSIONS, workers=2))
    return points


def add_ratios(results: list[Result]) -> None:
    best = {(r.rep, r.sessions, r.clients): r for r in results if r.variant == BASELINE and r.workers == 1}
    for r in results:
        base = best.get((r.rep, r.sessions, r.clients)) or best.get((r.rep, r.sessions, 1))
        if base is not None and base.steps_per_s and r is not base:
            r.x_best_steps = round(r.steps_per_s / base.steps_per_s, 2)
            r.p99_vs_best = round(r.p99_ms / base.p99_ms, 3) if base.p99_ms else None


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


def format_table(results: list[Result]) -> str:
    header = (
        f"{'variant':<18} {'sess':>4} {'cli':>3} {'wrk':>3} {'rep':>3} {'steps/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'start p50':>9} {'start p99':>9} {'srv us/st':>9} {'cli us/st':>9} {'srv MiB':>7} {'cli MiB':>7} "
        f"{'err':>4} {'x best':>6} {'p99/best':>8}  worker shares"
    )
    lines = [header, "-" * len(header)]
    for r in sorted(results, key=lambda r: (r.sessions, r.clients, r.workers, r.variant, r.rep)):
        lines.append(
            f"{r.variant:<18} {r.sessions:>4} {r.clients:>3} {r.workers:>3} {r.rep:>3} {r.steps_per_s:>8,.0f} "
            f"{_f(r.p50_ms, '.2f'):>7} {_f(r.p99_ms, '.2f'):>7} {_f(r.start_p50_ms, '.2f'):>9} "
            f"{_f(r.start_p99_ms, '.2f'):>9} {_f(r.server_us_per_step, '.0f'):>9} {_f(r.client_us_per_step, '.0f'):>9} "
            f"{_f(r.server_peak_rss_mib, '.0f'):>7} {_f(r.client_peak_rss_mib, '.0f'):>7} {r.errors:>4} "
            f"{_f(r.x_best_steps, '.2f'):>6} {_f(r.p99_vs_best, '.3f'):>8}  "
            + " ".join(f"{w}={s:.2f}" for w, s in r.worker_shares.items())
        )
    return "\n".join(lines)


def check_targets(results: list[Result]) -> list[dict[str, Any]]:
    """The targets at 1024 sessions, one client process, one server process, per rep."""
    checks: list[dict[str, Any]] = []
    for r in results:
        if (r.variant, r.sessions, r.clients, r.workers) != ("gymwire-multiplex", TARGET_SESSIONS, 1, 1):
            continue
        tag = f"rep {r.rep}"
        checks += [
            {
                "target": f"{tag}: steps/s >= 2x openenv-best",
                "value": r.x_best_steps,
                "met": r.x_best_steps is not None and r.x_best_steps >= 2.0,
            },
            {
                "target": f"{tag}: p99 <= 0.5x openenv-best's",
                "value": r.p99_vs_best,
                "met": r.p99_vs_best is not None and r.p99_vs_best <= 0.5,
            },
            {
                "target": f"{tag}: server CPU <= 60 us/step",
                "value": _round(r.server_us_per_step),
                "met": r.server_us_per_step is not None and r.server_us_per_step <= 60,
            },
            {
                "target": f"{tag}: client CPU <= 60 us/step",
                "value": _round(r.client_us_per_step),
                "met": r.client_us_per_step is not None and r.client_us_per_step <= 60,
            },
            {
                "target": f"{tag}: episode start p50 <= step p50",
                "value": [_round(r.start_p50_ms), _round(r.p50_ms)],
                "met": r.start_p50_ms <= r.p50_ms,
            },
        ]
    for r in results:
        if r.workers > 1 and r.variant == "gymwire-multiplex":
            fair = 1 / r.workers
            low = min(r.worker_shares.values(), default=0.0) if len(r.worker_shares) == r.workers else 0.0
            checks.append(
                {
                    "target": f"rep {r.rep}: every one of {r.workers} workers serves >= half its fair share",
                    "value": r.worker_shares,
                    "met": low >= fair / 2,
                }
            )
    return checks


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _machine() -> dict[str, Any]:
    from importlib.metadata import version

    import grpc
    import openenv  # noqa: F401
    import uvicorn
    import uvloop
    import websockets

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "grpcio": grpc.__version__,
        "openenv-core": version("openenv-core"),
        "uvicorn": uvicorn.__version__,
        "uvloop": uvloop.__version__,
        "websockets": websockets.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--client"]:
        return run_client_process(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m bench.peers",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    all_variants = (*GYMWIRE_VARIANTS, *OPENENV_VARIANTS)
    default_variants = "gymwire-multiplex,gymwire-stream,openenv-best,openenv-installed"
    p.add_argument("--sessions", default="1,64,1024", help="comma-separated concurrent sessions (default 1,64,1024)")
    p.add_argument("--variants", default=default_variants, help=f"subset of {','.join(all_variants)}")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per point (default 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before the window (default 3)")
    p.add_argument("--reps", type=int, default=2, help="repetitions of the whole plan (default 2)")
    p.add_argument(
        "--lockstep",
        action="store_true",
        help="start every session at once, so all episodes end in the same turn (default: starts spread over the "
        "first half of the warm-up, as a trainer's episodes never end together)",
    )
    p.add_argument("--no-two-clients", action="store_true", help="skip the 2-client-process points")
    p.add_argument("--no-workers", action="store_true", help="skip the 2-worker gymwire point")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 rep, 2 s windows, 1 and 64 sessions")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    sessions = [int(x) for x in args.sessions.split(",") if x]
    variants = [v for v in args.variants.split(",") if v]
    if set(variants) - set(all_variants):
        p.error(f"unknown variants; choose from {', '.join(all_variants)}")
    duration, warmup, reps = args.duration, args.warmup, args.reps
    if args.quick:
        sessions = [1, 64] if args.sessions == p.get_default("sessions") else sessions
        duration, warmup, reps = 2.0, 0.5, 1
    # SIGTERM unwinds like Ctrl-C, so the servers and client processes of the point under way are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    machine = _machine()
    machine["load_average_before"] = os.getloadavg()
    points = plan(sessions, variants, not args.no_two_clients, not args.no_workers)
    started = time.perf_counter()
    results: list[Result] = []
    for rep in range(1, reps + 1):
        for point in points:
            result = measure(point, rep, warmup, duration, args.lockstep)
            print(
                f"  rep {rep} {point.variant:<18} x{point.sessions:<5} clients {point.clients} workers "
                f"{point.workers}: {result.steps_per_s:>8,.0f} steps/s, p99 {result.p99_ms:.1f} ms, "
                f"{result.errors} errors",
                file=sys.stderr,
                flush=True,
            )
            results.append(result)
    add_ratios(results)
    checks = check_targets(results)
    machine["load_average_after"] = os.getloadavg()
    print(
        f"peers benchmark: {machine['cpus']} CPUs, load average {machine['load_average_before'][0]:.1f} before, "
        f"{machine['load_average_after'][0]:.1f} after; {warmup:g} s warm-up, {duration:g} s window, {reps} reps; "
        f"echo env (reset 200 chars, step 1024 chars, 50 steps); 'x best' and 'p99/best' vs {BASELINE}"
    )
    print(format_table(results))
    print_targets(checks)
    write_json(
        args.out,
        {
            "benchmark": "peers",
            "settings": {
                "sessions": sessions,
                "variants": variants,
                "duration": duration,
                "warmup": warmup,
                "reps": reps,
                "lockstep": args.lockstep,
            },
            "machine": machine,
            "workload": {
                "env": "echo",
                "reset_chars": 200,
                "step_chars": 1024,
                "episode_steps": 50,
                "action": ACTION,
            },
            "wall_seconds": round(time.perf_counter() - started, 1),
            "results": [asdict(r) for r in results],
            "targets": checks,
        },
    )
    print(f"wrote {args.out} ({time.perf_counter() - started:.0f} s)")
    return 1 if any(r.steps == 0 for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

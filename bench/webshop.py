"""WebShop at catalogue scale: build, disk, restart readiness, memory, search latency, throughput.

Why: the original WebShop needs ~15 GB of RAM and 30-90 s to start over 1.18M products. This
environment keeps products as fixed-size rows (memory-mapped) and a prebuilt tantivy index in a
cache folder, so a restart should be ready in seconds with a small resident set. For each size:

  build        a fresh build in a child process (generate rows + render text + index), wall time and
               the child's peak RSS;
  disk         bytes of the cache folder (rows + index);
  ready        `gymwire serve ... -o products=N` started against the built cache, seconds from spawn
               until the health check says SERVING (best of --restarts);
  RSS          the serving process's resident set when ready and after the load test (VmRSS), and
               its peak (VmHWM);
  search       BM25 latency in this process over the same index, for the expert's queries of
               listed tasks (p50 / p99);
  steps/s      --concurrency sessions (default 256) on one AsyncEnvClient channel, each replaying
               expert trajectories (search, click, options, buy) of listed tasks over unary RPCs;
               steps completed in the timed window, step latency p50 / p99, the server's CPU per
               step (all its threads), and the share of episodes that ended with reward 1 (all
               should). Client and server share this machine's cores.
  in-process   the same trajectories stepped directly on the environment in this process: the
               env's own cost per step, the ceiling the server's steps/s is compared with.

    python -m bench.webshop                          # 10k, 100k, 1M (the 1M build takes a few minutes)
    python -m bench.webshop --sizes 10000,100000 --duration 5
    python -m bench.webshop --cache-dir /tmp/ws --keep   # reuse builds between runs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import ROOT, cpu_seconds, json_child, percentile, status_kb, stop, wait_ready, write_json
from gymwire.env_servers.local import free_port

DEFAULT_OUT = ROOT / "bench" / "results" / "webshop.json"
ENV_SPEC = "gymwire.env_servers.webshop:WebShopEnvironment"


@dataclass
class Row:
    products: int
    build_s: float
    build_index_s: float
    build_peak_rss_mb: float
    disk_mb: float
    ready_s: float
    ready_first_s: float
    rss_ready_mb: float
    rss_loaded_mb: float
    rss_peak_mb: float
    search_p50_ms: float
    search_p99_ms: float
    steps_per_s: float
    inprocess_steps_per_s: float
    server_cpu_ms_per_step: float
    step_p50_ms: float
    step_p99_ms: float
    episodes: int
    success_rate: float
    errors: int


_BUILD_CHILD = """
import json, resource, sys, time
from gymwire.env_servers.webshop.generator import CatalogueSpec
from gymwire.env_servers.webshop.store import GeneratedCatalogue
t = time.perf_counter()
c = GeneratedCatalogue(CatalogueSpec(int(sys.argv[1])), sys.argv[2])
print(json.dumps({"wall": time.perf_counter() - t, "meta": c.meta, "disk": c.disk_bytes(),
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def build(products: int, cache: Path) -> dict:
    return json_child(["-c", _BUILD_CHILD, str(products), str(cache)])


async def _wait_serving(address: str, proc: subprocess.Popen) -> None:
    from gymwire.client.aio import AsyncEnvClient

    async with AsyncEnvClient(address) as client:
        await wait_ready(
            lambda: client.health(timeout=0.5), proc, address, timeout=300, last_words=lambda: proc.stderr.read()
        )


def start_server(products: int, cache: Path) -> tuple[subprocess.Popen, str, float]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gymwire.cli.main",
            "serve",
            ENV_SPEC,
            "--port",
            str(port),
            "--max-sessions",
            "4096",
            "-o",
            f"products={products}",
            "-o",
            f"cache_dir={cache}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GYMWIRE_LOG_LEVEL": "WARNING"},
    )
    asyncio.run(_wait_serving(address, proc))
    return proc, address, time.perf_counter() - started


def expert_trajectories(env, tasks: list) -> list[tuple[str, list[str]]]:
    """The expert's turns for each task, played in this process (the server replays them)."""
    out = []
    for task in tasks:
        episode = env.start(task)
        episode.reset()
        turns = []
        while True:
            turn = episode.expert_action()
            turns.append(turn)
            if episode.step(turn).terminated:
                break
        out.append((task.id, turns))
    return out


def inprocess_steps_per_s(env, trajectories: list[tuple[str, list[str]]], seconds: float = 3.0) -> float:
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for task_id, turns in trajectories:
            episode = env.start(env.catalogue().get(task_id))
            episode.reset()
            for turn in turns:
                episode.step(turn)
            steps += len(turns)
    return steps / (time.perf_counter() - started)


async def load(
    address: str,
    trajectories: list[tuple[str, list[str]]],
    concurrency: int,
    duration: float,
    warmup: float,
    server_pid: int,
) -> tuple[int, float, list[float], int, int, int, float]:
    from gymwire.client.aio import AsyncEnvClient

    latencies: list[float] = []
    counts = {"steps": 0, "episodes": 0, "solved": 0, "errors": 0}
    window = {"open": False, "stop": False}

    async def session(client: AsyncEnvClient, rng: random.Random) -> None:
        while not window["stop"]:
            task_id, turns = trajectories[rng.randrange(len(trajectories))]
            try:
                episode = await client.reset(task_id)
                obs = None
                for turn in turns:
                    t = time.perf_counter()
                    obs = await episode.step(turn)
                    if window["open"]:
                        latencies.append(time.perf_counter() - t)
                        counts["steps"] += 1
                if window["open"]:
                    counts["episodes"] += 1
                    counts["solved"] += bool(obs is not None and obs.success)
            except Exception:  # noqa: BLE001 - counted and reported
                counts["errors"] += 1

    async with AsyncEnvClient(address) as client:
        tasks = [asyncio.create_task(session(client, random.Random(i))) for i in range(concurrency)]
        await asyncio.sleep(warmup)
        window["open"] = True
        opened, cpu_opened = time.perf_counter(), cpu_seconds(server_pid)
        await asyncio.sleep(duration)
        window["open"] = False
        seconds, cpu = time.perf_counter() - opened, cpu_seconds(server_pid) - cpu_opened
        window["stop"] = True
        await asyncio.gather(*tasks)
    return counts["steps"], seconds, latencies, counts["episodes"], counts["solved"], counts["errors"], cpu


def measure(products: int, cache: Path, args) -> Row:
    from gymwire.env_servers.webshop import WebShopEnvironment
    from gymwire.env_servers.webshop.oracle import instruction_query

    print(f"[{products:,}] building ...", flush=True)
    built = build(products, cache)
    print(f"[{products:,}] built in {built['wall']:.1f} s; starting the server", flush=True)

    ready_times = []
    proc = None
    for _ in range(max(1, args.restarts)):
        if proc is not None:
            stop(proc, grace=30)
        proc, address, ready = start_server(products, cache)
        ready_times.append(ready)
    assert proc is not None
    try:
        rss_ready = status_kb(proc.pid, "VmRSS") / 1024

        env = WebShopEnvironment(products, cache_dir=cache, tasks_per_tier=50)
        tasks = env.catalogue().list()
        queries = [instruction_query(env.tasks.goal(t.id)[0].instruction) for t in tasks]
        search_ms = []
        for q in queries * 2:
            t = time.perf_counter()
            env.store.search(q)
            search_ms.append((time.perf_counter() - t) * 1000)
        sample = random.Random(0).sample(tasks, min(len(tasks), args.tasks))
        trajectories = expert_trajectories(env, sample)
        inprocess = inprocess_steps_per_s(env, trajectories)

        print(f"[{products:,}] load: {args.concurrency} sessions for {args.duration:.0f} s", flush=True)
        steps, seconds, latencies, episodes, solved, errors, server_cpu = asyncio.run(
            load(address, trajectories, args.concurrency, args.duration, args.warmup, proc.pid)
        )
        rss_loaded = status_kb(proc.pid, "VmRSS") / 1024
        rss_peak = status_kb(proc.pid, "VmHWM") / 1024
    finally:
        stop(proc, grace=30)
    return Row(
        products=products,
        build_s=round(built["wall"], 2),
        build_index_s=round(built["meta"].get("index_seconds", float("nan")), 2),
        build_peak_rss_mb=round(built["peak_kb"] / 1024, 1),
        disk_mb=round(built["disk"] / 2**20, 1),
        ready_s=round(min(ready_times), 3),
        ready_first_s=round(ready_times[0], 3),
        rss_ready_mb=round(rss_ready, 1),
        rss_loaded_mb=round(rss_loaded, 1),
        rss_peak_mb=round(rss_peak, 1),
        search_p50_ms=round(percentile(search_ms, 0.5), 3),
        search_p99_ms=round(percentile(search_ms, 0.99), 3),
        steps_per_s=round(steps / seconds, 1),
        inprocess_steps_per_s=round(inprocess, 1),
        server_cpu_ms_per_step=round(server_cpu / steps * 1000, 3) if steps else float("nan"),
        step_p50_ms=round(percentile(latencies, 0.5) * 1000, 2),
        step_p99_ms=round(percentile(latencies, 0.99) * 1000, 2),
        episodes=episodes,
        success_rate=round(solved / episodes, 4) if episodes else float("nan"),
        errors=errors,
    )


COLUMNS = [
    ("products", "products", "{:,}"),
    ("build_s", "build s", "{:.1f}"),
    ("build_index_s", "index s", "{:.1f}"),
    ("build_peak_rss_mb", "build RSS MB", "{:.0f}"),
    ("disk_mb", "disk MB", "{:.1f}"),
    ("ready_s", "ready s", "{:.2f}"),
    ("rss_ready_mb", "RSS ready MB", "{:.0f}"),
    ("rss_loaded_mb", "RSS loaded MB", "{:.0f}"),
    ("search_p50_ms", "search p50 ms", "{:.2f}"),
    ("search_p99_ms", "search p99 ms", "{:.2f}"),
    ("steps_per_s", "steps/s", "{:,.0f}"),
    ("inprocess_steps_per_s", "in-proc steps/s", "{:,.0f}"),
    ("server_cpu_ms_per_step", "srv CPU ms/step", "{:.2f}"),
    ("step_p50_ms", "step p50 ms", "{:.1f}"),
    ("step_p99_ms", "step p99 ms", "{:.1f}"),
    ("success_rate", "expert success", "{:.3f}"),
]


def table(rows: list[Row]) -> str:
    header = [title for _, title, _ in COLUMNS]
    body = [[fmt.format(getattr(r, key)) for key, _, fmt in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = [" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated catalogue sizes")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds of load per size")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--restarts", type=int, default=2, help="server starts per size (best is reported)")
    parser.add_argument("--tasks", type=int, default=100, help="listed tasks whose expert turns are replayed")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep builds here (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="do not delete the cache folder afterwards")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="gymwire-webshop-bench-"))
    rows = []
    try:
        for size in sizes:
            rows.append(measure(size, cache, args))
            print(table(rows[-1:]), flush=True)
    finally:
        if not args.keep and args.cache_dir is None:
            shutil.rmtree(cache, ignore_errors=True)
    print()
    print(table(rows))
    write_json(
        args.out,
        {
            "bench": "webshop",
            "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "max_rss_this_process_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            },
            "settings": {
                "concurrency": args.concurrency,
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "restarts": args.restarts,
                "tasks": args.tasks,
            },
            "rows": [asdict(r) for r in rows],
        },
        indent=1,
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

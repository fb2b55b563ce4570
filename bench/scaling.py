"""Worker processes vs threads for a CPU-bound environment: does a server use every core?

The same CPU-bound env (bench/cpu_env.py) is served three ways: one process running env code on
its event loop, one process with a thread pool (`--threads`: the GIL serialises pure-Python env
code, so this should not help), and `--workers N` processes sharing the port (SO_REUSEPORT). A
client drives concurrent Session streams over several channels (each channel is one connection,
and the kernel spreads connections over the workers). Prints steps/s and the speed-up over one
process; writes JSON.

    python -m bench.scaling                    # workers 1 and 2 (this machine has 2 cores)
    python -m bench.scaling --workers 1,2,4 --work 40000 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from bench import write_rows
from gymwire.client import AsyncEnvClient
from gymwire.env_servers.local import LocalServer

ENV = "bench.cpu_env:BurnEnvironment"


async def drive(address: str, sessions: int, channels: int, seconds: float) -> float:
    clients = [AsyncEnvClient(address) for _ in range(channels)]
    steps = 0
    stop_at = time.perf_counter() + seconds

    async def play(client: AsyncEnvClient, i: int) -> None:
        nonlocal steps
        episode = await client.reset(f"burn-{i % 8}", transport="session", max_turns=1000)
        while time.perf_counter() < stop_at:
            await episode.step("hello")
            steps += 1
        await episode.close()

    started = time.perf_counter()
    await asyncio.gather(*(play(clients[i % channels], i) for i in range(sessions)))
    elapsed = time.perf_counter() - started
    for c in clients:
        await c.close()
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--work", type=int, default=20_000, help="loop iterations per step (~1 ms per 20k)")
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/scaling.json"))
    args = parser.parse_args()

    layouts = [("1 process", ["--workers", "1"]), ("1 process, 2 threads", ["--workers", "1", "--threads", "2"])]
    layouts += [(f"{n} workers", ["--workers", str(n)]) for n in map(int, args.workers.split(",")) if n > 1]
    rows = []
    for name, flags in layouts:
        with LocalServer(ENV, *flags, "-o", f"work={args.work}") as server:
            rate = asyncio.run(drive(server.address, args.sessions, args.channels, args.seconds))
        rows.append({"layout": name, "steps_per_s": rate})
    base = rows[0]["steps_per_s"]
    print(
        f"CPU-bound env ({args.work} iterations/step), {args.sessions} streams over {args.channels} channels, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'layout':24s} {'steps/s':>9s} {'x 1 process':>12s}")
    for r in rows:
        r["speedup"] = r["steps_per_s"] / base
        print(f"{r['layout']:24s} {r['steps_per_s']:9.0f} {r['speedup']:12.2f}")
    write_rows(args, rows)


if __name__ == "__main__":
    main()

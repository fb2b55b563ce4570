"""Per-environment speed and memory: steps/s in-process and through gymwire, RSS per 1000 sessions.

For each environment the same turn (a fixed, invalid one: every step is a full parse and reply,
and episodes last until the turn limit) is stepped in-process (Episode.step in a loop: the limit)
and through a real server with 256 concurrent Session streams; then 1000 sessions are opened and
held while the server's RSS is read. Prints a table, writes JSON.

    python -m bench.envs                           # babyai and textcraft
    python -m bench.envs --envs babyai,textcraft,alfworld,webshop,searchqa --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from bench import status_kb, write_rows
from gymwire.client import AsyncEnvClient
from gymwire.env_servers.local import LocalServer
from gymwire.env_servers.registry import load_environment

TURN = "Thought: not sure. Action: look around carefully"


def in_process(env_name: str, seconds: float) -> float:
    env = load_environment(env_name)
    tasks = env.catalogue().list("train", "easy")[:50]
    steps, i = 0, 0
    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < stop:
        episode = env.start(tasks[i % len(tasks)])
        episode.reset()
        for _ in range(100):
            steps += 1
            if episode.step(TURN).terminated:
                break
        i += 1
    return steps / (time.perf_counter() - started)


async def through_server(address: str, sessions: int, seconds: float) -> float:
    clients = [AsyncEnvClient(address) for _ in range(8)]
    tasks = await clients[0].list_tasks("train", "easy", limit=50)
    steps = 0
    stop = time.perf_counter() + seconds

    async def play(i: int) -> None:
        nonlocal steps
        client = clients[i % len(clients)]
        while time.perf_counter() < stop:
            episode = await client.reset(tasks[i % len(tasks)].id, transport="session", max_turns=100)
            while not episode.done and time.perf_counter() < stop:
                await episode.step(TURN)
                steps += 1
            await episode.close()

    started = time.perf_counter()
    await asyncio.gather(*(play(i) for i in range(sessions)))
    rate = steps / (time.perf_counter() - started)
    for c in clients:
        await c.close()
    return rate


async def hold_sessions(address: str, count: int) -> list:
    client = AsyncEnvClient(address)
    tasks = await client.list_tasks("train", "easy", limit=50)
    episodes = []
    for i in range(0, count, 100):
        episodes += await asyncio.gather(*(client.reset(tasks[(i + j) % len(tasks)].id) for j in range(100)))
    return [client, episodes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default="babyai,textcraft")
    parser.add_argument("--sessions", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/envs.json"))
    args = parser.parse_args()

    rows = []
    for name in args.envs.split(","):
        local = in_process(name, args.seconds)
        with LocalServer(name, "--max-sessions", "4096") as server:
            served = asyncio.run(through_server(server.address, args.sessions, args.seconds))
            idle = status_kb(server.proc.pid, "VmRSS") / 1024

            async def held() -> float:
                client, _episodes = await hold_sessions(server.address, 1000)
                value = status_kb(server.proc.pid, "VmRSS") / 1024
                await client.close()
                return value

            loaded = asyncio.run(held())
        rows.append(
            {
                "env": name,
                "in_process_steps_s": local,
                "server_steps_s": served,
                "rss_mb": idle,
                "rss_per_1000_sessions_mb": loaded - idle,
            }
        )
    print(
        f"environments: the same invalid turn in-process vs over {args.sessions} concurrent Session streams; "
        f"server RSS with 1000 open sessions"
    )
    print(
        f"{'env':10s} {'in-process steps/s':>19s} {'gymwire steps/s':>16s} {'server RSS MB':>14s} "
        f"{'+MB per 1000 sessions':>22s}"
    )
    for r in rows:
        print(
            f"{r['env']:10s} {r['in_process_steps_s']:19.0f} {r['server_steps_s']:16.0f} {r['rss_mb']:14.0f} "
            f"{r['rss_per_1000_sessions_mb']:22.1f}"
        )
    write_rows(args, rows)


if __name__ == "__main__":
    main()

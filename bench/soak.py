"""Soak: many concurrent sessions through the Multiplex stream for a long time, servers restarted on a
schedule, and a trainer-shaped client that keeps an exact ledger of its episodes.

Two `gymwire serve guess` replicas on loopback ports. The client keeps `--sessions` episodes open at
all times through one EnvPool (Multiplex transport), pacing each turn as a sampler would, and retries
an aborted episode once on another replica, as the trainer does. Every `--restart-every` seconds one
replica is stopped, alternately by SIGTERM (drain with --grace) and SIGKILL, and started again on the
same port 3 s later. Every `--sample-every` seconds it records steps/s and the RSS of every process.

The ledger: each episode gets an id when it starts and exactly one outcome (scored or aborted) when it
ends; a second outcome for one id, or an id left without one when the soak has drained, is a failure.

    python -m bench.soak --minutes 60             # the full soak
    python -m bench.soak --minutes 2 --sessions 256  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import status_kb, write_rows
from gymwire.client import ChannelOptions, EnvPool, EpisodeAborted
from gymwire.env_servers.local import LocalServer, free_port

OUTCOMES = {"scored": 1, "aborted": 2, "error": 3}


@dataclass
class Ledger:
    """One byte per episode (0: still open), so the ledger itself adds ~1 MB per million episodes to the
    client's RSS, whose growth the soak bounds."""

    started: int = 0
    outcomes: bytearray = field(default_factory=bytearray)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    twice: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # anything but a score or an abort
    steps: int = 0
    retried: int = 0

    def open(self) -> int:
        self.started += 1
        self.outcomes.append(0)
        return self.started - 1

    def close(self, episode: int, outcome: str) -> None:
        if self.outcomes[episode]:
            self.twice.append(episode)
        self.outcomes[episode] = OUTCOMES[outcome]
        self.counts[outcome] += 1

    @property
    def lost(self) -> int:
        return self.outcomes.count(0)


class Replicas:
    """The servers, restartable on their ports."""

    def __init__(self, count: int, grace: float):
        self.ports = [free_port() for _ in range(count)]
        self.grace = grace
        self.servers = [self._start(port) for port in self.ports]
        for server in self.servers:
            server.wait()
        self.restarts: list[dict] = []

    def _start(self, port: int) -> LocalServer:
        return LocalServer("guess", "--grace", str(self.grace), "--max-sessions", "4096", port=port)

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]

    async def restart(self, index: int, how: str, soak_s: float) -> None:
        server = self.servers[index]
        server.proc.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGKILL)
        await asyncio.to_thread(server.proc.wait, self.grace + 30)
        await asyncio.sleep(3.0)
        self.servers[index] = self._start(self.ports[index])
        await asyncio.to_thread(self.servers[index].wait)
        self.restarts.append({"t": round(soak_s, 1), "replica": index, "how": how})

    def rss_kb(self) -> list[int]:
        return [status_kb(s.proc.pid, "VmRSS") if s.proc.poll() is None else 0 for s in self.servers]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


async def _episode(pool: EnvPool, ledger: Ledger, episode: int, rng: random.Random, pace: float) -> None:
    task = f"train-easy-{rng.randrange(200)}"
    for attempt in range(2):  # one retry on another replica, as the trainer's abort_retries
        handle = None
        try:
            handle = await pool.reset("guess", task, transport="multiplex")
            while not handle.done:
                await asyncio.sleep(pace * (0.5 + rng.random()))  # the sampler's time, spread out
                await handle.step(f"Action: guess {rng.randint(1, 10)}")
                ledger.steps += 1
            ledger.close(episode, "scored")
            return
        except EpisodeAborted:
            if attempt == 0:
                ledger.retried += 1
                continue
            ledger.close(episode, "aborted")
            return
        except Exception as exc:  # noqa: BLE001 - counted: the soak looks for exactly these
            ledger.errors.append(repr(exc)[:200])
            ledger.close(episode, "error")
            return
        finally:
            if handle is not None:
                try:
                    await handle.close()
                except Exception:  # noqa: BLE001 - closing on a dead server: the outcome is already kept
                    pass


async def soak(args: argparse.Namespace) -> tuple[list[dict], dict]:
    replicas = Replicas(2, args.grace)
    ledger = Ledger()
    rng = random.Random(args.seed)
    samples: list[dict] = []
    started = time.monotonic()
    deadline = started + args.minutes * 60
    try:
        async with EnvPool(replicas.addresses, ChannelOptions(timeout=30), cooloff=5) as pool:
            running: set[asyncio.Task] = set()

            async def keep_open() -> None:
                while time.monotonic() < deadline:
                    while len(running) < args.sessions:
                        task = asyncio.create_task(_episode(pool, ledger, ledger.open(), rng, args.pace))
                        running.add(task)
                        task.add_done_callback(running.discard)
                    await asyncio.sleep(0.01)

            async def restarts() -> None:
                n = 0
                while time.monotonic() + args.restart_every < deadline:
                    await asyncio.sleep(args.restart_every)
                    how = "SIGTERM" if n % 2 == 0 else "SIGKILL"
                    await replicas.restart(n % 2, how, time.monotonic() - started)
                    n += 1

            async def sample() -> None:
                last_steps, last_t = 0, time.monotonic()
                while time.monotonic() < deadline:
                    await asyncio.sleep(args.sample_every)
                    now = time.monotonic()
                    samples.append(
                        {
                            "t": round(now - started, 1),
                            "steps_per_s": round((ledger.steps - last_steps) / (now - last_t), 1),
                            "open": len(running),
                            "client_rss_mib": round(status_kb(os.getpid(), "VmRSS") / 1024, 1),
                            "server_rss_mib": [round(kb / 1024, 1) for kb in replicas.rss_kb()],
                            "scored": ledger.counts["scored"],
                            "aborted": ledger.counts["aborted"],
                        }
                    )
                    last_steps, last_t = ledger.steps, now
                    if args.verbose:
                        print(samples[-1], flush=True)

            await asyncio.gather(keep_open(), restarts(), sample())
            await asyncio.wait_for(asyncio.gather(*running), timeout=120)  # drain: every episode ends
    finally:
        replicas.stop()
    return samples, _summary(args, ledger, samples, replicas.restarts, time.monotonic() - started)


def _summary(args: argparse.Namespace, ledger: Ledger, samples: list[dict], restarts: list[dict], wall: float) -> dict:
    warm = [s for s in samples if s["t"] >= 60] or samples
    tail = warm[-max(len(warm) // 10, 1) :]
    head = warm[: max(len(warm) // 10, 1)]
    client_growth = statistics.median(s["client_rss_mib"] for s in tail) - statistics.median(
        s["client_rss_mib"] for s in head
    )
    server_peak = max((max(s["server_rss_mib"]) for s in samples), default=0.0)
    return {
        "minutes": round(wall / 60, 1),
        "sessions": args.sessions,
        "restarts": len(restarts),
        "restarts_sigterm": sum(r["how"] == "SIGTERM" for r in restarts),
        "restarts_sigkill": sum(r["how"] == "SIGKILL" for r in restarts),
        "episodes_started": ledger.started,
        "scored": ledger.counts["scored"],
        "aborted": ledger.counts["aborted"],
        "errors": len(ledger.errors),
        "error_examples": ledger.errors[:5],
        "lost": ledger.lost,
        "counted_twice": len(ledger.twice),
        "retried": ledger.retried,
        "steps": ledger.steps,
        "steps_per_s_median": statistics.median(s["steps_per_s"] for s in warm) if warm else 0.0,
        "steps_per_s_min": min((s["steps_per_s"] for s in warm), default=0.0),
        "client_rss_growth_mib": round(client_growth, 1),
        "client_rss_bound_mib": args.rss_bound,
        "server_rss_peak_mib": server_peak,
        "passed": not ledger.lost and not ledger.twice and not ledger.errors and client_growth <= args.rss_bound,
        "restart_schedule": restarts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--sessions", type=int, default=1024, help="episodes kept open at all times")
    parser.add_argument("--pace", type=float, default=0.25, help="mean seconds between an episode's turns")
    parser.add_argument("--restart-every", type=float, default=60.0, help="seconds between server restarts")
    parser.add_argument("--grace", type=float, default=5.0, help="the drained server's --grace")
    parser.add_argument("--sample-every", type=float, default=10.0)
    parser.add_argument("--rss-bound", type=float, default=32.0, help="allowed client RSS growth (MiB)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/results/soak.json"))
    args = parser.parse_args()
    samples, summary = asyncio.run(soak(args))
    print(f"soak: {summary['minutes']} min, {args.sessions} sessions, {summary['restarts']} restarts")
    for key, value in summary.items():
        if key != "restart_schedule":
            print(f"  {key:24s} {value}")
    write_rows(args, [{"summary": summary, "samples": samples}])
    raise SystemExit(0 if summary["passed"] else 1)


if __name__ == "__main__":
    main()

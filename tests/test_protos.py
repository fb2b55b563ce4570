"""The released contract guards the protos: `buf breaking` (as CI runs it) fails on a breaking change.

Each case edits a copy of protos/ and checks it against the newest image in protos/releases.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROTOS = Path(__file__).resolve().parents[1] / "protos"
PROTO = Path("gymwire/v1/environment.proto")
# buf-bin (the dev extra) puts buf beside the venv's Python.
BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")

pytestmark = pytest.mark.skipif(BUF is None, reason="buf is not installed (the dev extra's buf-bin)")


def latest_release() -> Path:
    images = sorted(PROTOS.glob("releases/v*.binpb"), key=lambda p: [int(n) for n in p.stem[1:].split(".")])
    assert images, "no released contract in protos/releases (python protos/generate.py --release VERSION)"
    return images[-1]


def breaking(tmp_path: Path, old: str | None = None, new: str = "") -> subprocess.CompletedProcess:
    """`buf breaking` on a copy of protos/ with `old` replaced by `new` in the contract."""
    copy = tmp_path / "protos"
    shutil.copytree(PROTOS, copy, ignore=shutil.ignore_patterns("*.py", "*.pyi", "__pycache__", "releases"))
    if old is not None:
        text = (copy / PROTO).read_text()
        assert text.count(old) == 1, f"{old!r} is not in the contract exactly once"
        (copy / PROTO).write_text(text.replace(old, new))
    return subprocess.run(
        [BUF, "breaking", ".", "--against", str(latest_release())],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_current_contract_keeps_the_release(tmp_path: Path) -> None:
    result = breaking(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_adding_a_field_is_compatible(tmp_path: Path) -> None:
    result = breaking(tmp_path, "  Catalogue catalogue = 8;\n", "  Catalogue catalogue = 8;\n  string homepage = 10;\n")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("string action_grammar = 6;", "string action_grammar = 16;", "action_grammar"),  # a renumbered field
        ("  Catalogue catalogue = 8;\n", "", "catalogue"),  # a removed field
        ("string instruction = 5;", "string prompt = 5;", "instruction"),  # a renamed field (JSON names change)
        ("rpc Close(CloseRequest) returns (CloseResponse);", "", "Close"),  # a removed method
    ],
    ids=["renumbered", "removed", "renamed", "removed-rpc"],
)
def test_a_breaking_change_fails(tmp_path: Path, old: str, new: str, complaint: str) -> None:
    result = breaking(tmp_path, old, new)
    assert result.returncode != 0, f"buf breaking accepted {old!r} -> {new!r}"
    assert complaint in result.stdout + result.stderr

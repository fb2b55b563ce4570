"""Trajectories as JSON Lines: what evaluations and training steps write, and what reports and
`gymwire masks` read back. One line per episode: {"sample": i, "trajectory": {...}}."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO

from gymwire.trainer.types import Trajectory

TOKEN_FIELDS = ("token_ids", "loss_mask", "logprobs", "windowed_turns")


def write_trajectory(sink: IO[str], trajectory: Trajectory, *, sample: int = 0, tokens: bool = True) -> None:
    """One line; without `tokens` the token-level fields are left empty (a tenth of the size)."""
    record = asdict(trajectory)
    if not tokens:
        record.update({name: [] for name in TOKEN_FIELDS})
    sink.write(json.dumps({"sample": sample, "trajectory": record}) + "\n")


def drop_cut_line(path: Path) -> None:
    """Truncate a last line that a kill cut short (no newline): its episode is played again."""
    with path.open("rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def read_trajectories(path: Path) -> Iterator[tuple[int, Trajectory]]:
    """(sample, trajectory) for every line of a file `write_trajectory` wrote."""
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                yield record.get("sample", 0), Trajectory(**record["trajectory"])
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}:{number}: not a trajectory record ({err})") from err

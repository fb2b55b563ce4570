"""The policy update spread over torchrun's ranks: rank 0 drives the run, the other ranks follow.

`torchrun --nproc_per_node N -m gymwire.cli.main train --config run.yaml` starts the same command on
every rank. Rank 0 runs the training run itself (env servers, rollouts, evaluations, files); every
rank holds an FSDP2 shard of the updater (`GRPOUpdater(..., dist=...)`). Each updater call that
touches the shards (a step, streaming the weights out, scoring, checkpoints) is announced to the
other ranks through torch.distributed's broadcast, with its arguments, so that they make the same
call in the same order and FSDP's collectives line up. Nothing else crosses ranks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from gymwire.trainer.distributed import Distributed, broadcast_object
from gymwire.trainer.settings import GRPOConfig

if TYPE_CHECKING:
    import torch

    from gymwire.trainer.grpo import GRPOUpdater
    from gymwire.trainer.types import Trajectory

log = logging.getLogger("gymwire.trainer")

# The updater's methods every rank must run together; everything else is read on rank 0 alone.
COLLECTIVE = frozenset({"step", "objective", "named_weights", "sequence_logprobs", "save", "load", "export"})

P = ParamSpec("P")
R = TypeVar("R")


class ShardedUpdater:
    """Rank 0's handle on a GRPOUpdater sharded over every rank: an `Updater` (trainer/updater.py)
    whose collective methods are announced to the other ranks before rank 0 makes them."""

    def __init__(self, model_dir: str, config: GRPOConfig, dist: Distributed) -> None:
        from gymwire.trainer.grpo import GRPOUpdater

        if not dist.is_main:
            raise RuntimeError("only rank 0 drives the update; the other ranks run follow()")
        self._dist = dist
        broadcast_object(("start", (model_dir, config), {}), dist)
        self._updater = GRPOUpdater(model_dir, config, dist=dist)

    # -- read on rank 0 alone ------------------------------------------------------------------

    @property
    def global_step(self) -> int:
        return self._updater.global_step

    @property
    def model(self) -> Any:
        return self._updater.model

    @property
    def tokenizer(self) -> Any:
        return self._updater.tokenizer

    # -- made by every rank together -------------------------------------------------------------

    def step(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        return self._together(self._updater.step, trajectories)

    def objective(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        return self._together(self._updater.objective, trajectories)

    def sequence_logprobs(self, token_ids: Sequence[int], temperature: float = 1.0) -> list[float]:
        return self._together(self._updater.sequence_logprobs, token_ids, temperature)

    def named_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Announced at the call; the other ranks then gather every tensor as rank 0 consumes them."""
        return self._together(self._updater.named_weights)

    def save(self, directory: str | os.PathLike[str], *, weights_only: bool = False) -> Path:
        return self._together(self._updater.save, directory, weights_only=weights_only)

    def load(self, directory: str | os.PathLike[str]) -> None:
        self._together(self._updater.load, directory)

    def export(self, directory: str | os.PathLike[str]) -> Path:
        return self._together(self._updater.export, directory)

    def _together(self, method: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Announce `method` (one of the updater's COLLECTIVE ones) with its arguments, then make it here."""
        name = method.__name__
        assert name in COLLECTIVE, name
        broadcast_object((name, args, kwargs), self._dist)
        return method(*args, **kwargs)


def stop_followers(dist: Distributed) -> None:
    """Release the other ranks (at the end of a run, or when rank 0 fails)."""
    broadcast_object(("stop", (), {}), dist)


def follow(dist: Distributed) -> None:
    """The loop of ranks > 0: make each call rank 0 announces until it says stop."""
    from gymwire.trainer.grpo import GRPOUpdater

    updater: GRPOUpdater | None = None
    while True:
        announced: tuple[str, tuple[Any, ...], dict[str, Any]] | None = broadcast_object(None, dist)
        assert announced is not None  # rank 0's message; None is only what this rank passed in
        command, args, kwargs = announced
        if command == "stop":
            return
        if command == "start":
            updater = GRPOUpdater(*args, dist=dist, **kwargs)
            continue
        if updater is None or command not in COLLECTIVE:
            raise RuntimeError(f"rank {dist.rank}: unexpected command {command!r} from rank 0")
        result = getattr(updater, command)(*args, **kwargs)
        if isinstance(result, Iterator):
            for _ in result:  # each tensor is gathered from every rank's shard
                pass

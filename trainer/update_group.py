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
from collections.abc import Iterator
from typing import Any

from gymwire.trainer.distributed import Distributed, broadcast_object
from gymwire.trainer.settings import GRPOConfig

log = logging.getLogger("gymwire.trainer")

# The updater's methods every rank must run together; everything else is read on rank 0 alone.
COLLECTIVE = frozenset({"step", "objective", "named_weights", "sequence_logprobs", "save", "load", "export"})


class ShardedUpdater:
    """Rank 0's handle on a GRPOUpdater sharded over every rank; used like the updater itself."""

    def __init__(self, model_dir: str, config: GRPOConfig, dist: Distributed) -> None:
        from gymwire.trainer.grpo import GRPOUpdater

        if not dist.is_main:
            raise RuntimeError("only rank 0 drives the update; the other ranks run follow()")
        self._dist = dist
        broadcast_object(("start", (model_dir, config), {}), dist)
        self._updater = GRPOUpdater(model_dir, config, dist=dist)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._updater, name)
        if name not in COLLECTIVE:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            broadcast_object((name, args, kwargs), self._dist)
            return attr(*args, **kwargs)

        return call


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

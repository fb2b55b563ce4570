"""What a training run asks of the policy update: the `Updater` protocol.

Two implementations: `GRPOUpdater` (trainer/grpo.py), the whole update in this process, and
`ShardedUpdater` (trainer/update_group.py), rank 0's handle on an update sharded over torchrun's
ranks. The Trainer (trainer/train.py) is written against this protocol alone, so either can be
handed to it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from gymwire.trainer.types import Trajectory


class Updater(Protocol):
    """The policy being trained, its optimizer and its step counter."""

    @property
    def global_step(self) -> int:
        """Steps taken (restored by `load`): a checkpoint's name and the trackers' x axis."""
        ...

    @property
    def model(self) -> Any:
        """The live model (a Hugging Face or PEFT module); an in-process backend samples with it."""
        ...

    @property
    def tokenizer(self) -> Any:
        """The tokenizer of the model being trained (None when the caller gave a model object without one)."""
        ...

    def step(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        """One GRPO step on finished episodes; advances `global_step`; returns the step's metrics."""
        ...

    def objective(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        """The step's loss and statistics at the current weights, changing nothing."""
        ...

    def sequence_logprobs(self, token_ids: Sequence[int], temperature: float = 1.0) -> list[float]:
        """The trainer's log p(token_t | tokens_<t) of one sequence (position 0: 0.0)."""
        ...

    def named_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The current policy's tensors in Hugging Face naming, LoRA merged: what an engine loads."""
        ...

    def save(self, directory: str | os.PathLike[str], *, weights_only: bool = False) -> Path:
        """Write a checkpoint `load` restores."""
        ...

    def load(self, directory: str | os.PathLike[str]) -> None:
        """Restore a `save`d checkpoint in place."""
        ...

    def export(self, directory: str | os.PathLike[str]) -> Path:
        """An ordinary HF folder of the current policy (LoRA merged)."""
        ...

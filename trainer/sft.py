"""Warm start: behaviour cloning on oracle trajectories, before GRPO (the AgentGym recipe).

The tiny default model rarely emits a valid action zero-shot, and GRPO learns nothing from groups
that all score 0, so a short SFT on oracle demonstrations comes first.

This uses TRL's `SFTTrainer` because it fits our token-exact records as they are: a pre-tokenized
dataset (an `input_ids` column) is used without re-tokenising, and an `assistant_masks` column is
turned into labels (-100 where the mask is 0) regardless of the chat template. So the model is
trained on exactly the tokens `Trajectory.loss_mask` marks (the agent's turns, end-of-turn token
included) and never on prompt, environment or template tokens, with TRL's loop, optimizer,
scheduler and logging. `max_length=None` keeps TRL from truncating episodes; dropping or
shortening an over-long one is the caller's decision.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from gymwire.trainer.console import Phase
from gymwire.trainer.model import cpu_has_bf16_matmul, release_memory
from gymwire.trainer.types import Trajectory, TurnSample

log = logging.getLogger(__name__)


def sft_records(trajectories: Sequence[Trajectory]) -> list[dict[str, list[int]]]:
    """Rows for TRL: token ids and the loss mask as `assistant_masks`; aborted or empty ones left out.

    With a history window an episode gives one row for its full sequence and one per windowed turn."""
    rows = []
    for traj in trajectories:
        if traj.aborted:
            continue
        sequences: list[Trajectory | TurnSample] = [traj, *traj.windowed_turns]
        for seq in sequences:
            if len(seq.loss_mask) != len(seq.token_ids):
                raise ValueError(
                    f"trajectory {traj.task_id!r}: loss_mask has {len(seq.loss_mask)} entries "
                    f"for {len(seq.token_ids)} tokens"
                )
            if any(seq.loss_mask):
                rows.append({"input_ids": list(seq.token_ids), "assistant_masks": [int(m) for m in seq.loss_mask]})
    if not rows:
        raise ValueError("no trajectory to clone: all were aborted or had no agent tokens")
    return rows


def make_sft_trainer(
    model_dir: str | os.PathLike[str],
    trajectories: Sequence[Trajectory],
    work_dir: str | os.PathLike[str],
    *,
    epochs: float = 2.0,
    lr: float = 1e-5,
    batch_size: int = 4,
    micro_batch_size: int = 1,
    gradient_accumulation_steps: int = 1,
    lora_r: int = 0,
    lora_alpha: int = 32,
    seed: int = 0,
    warmup_steps: float = 0,
    logging_steps: int = 10,
    **extra_args: Any,
) -> Any:
    """A configured `trl.SFTTrainer` (exposed so callers and tests can inspect the built labels).

    `batch_size` sequences make one optimizer step (times `gradient_accumulation_steps`); they go
    through forward and backward `micro_batch_size` at a time. TRL divides the loss by the tokens of
    the whole accumulated batch, so the step is the same sum as one padded batch of `batch_size`;
    one episode at a time keeps the peak at the longest episode's activations (and pads nothing).
    `extra_args` go to `trl.SFTConfig` unchanged (e.g. `lr_scheduler_type`, `max_grad_norm`).
    """
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if micro_batch_size < 1 or batch_size % micro_batch_size:
        raise ValueError(f"batch_size ({batch_size}) must be a multiple of micro_batch_size ({micro_batch_size})")
    on_gpu = torch.cuda.is_available()
    settings: dict[str, Any] = {
        "output_dir": str(work_dir),
        "num_train_epochs": epochs,
        "learning_rate": lr,
        "per_device_train_batch_size": micro_batch_size,
        "gradient_accumulation_steps": gradient_accumulation_steps * (batch_size // micro_batch_size),
        "warmup_steps": warmup_steps,  # transformers 5: a float < 1 is a fraction of all steps
        "seed": seed,
        "max_length": None,  # token-exact: never cut an episode behind the caller's back
        # bf16 autocast where the hardware multiplies bf16 natively, else fp32 (a CPU without bf16
        # instructions emulates it, slower than fp32). Gradient checkpointing (TRL's default) stays on: multi-turn
        # episodes are long, and without it the saved activations of one batch (4 x 1,500 tokens of
        # the 135M default model: ~10 GB) dwarf the model; recomputing them costs ~30% more time.
        "bf16": torch.cuda.is_bf16_supported() if on_gpu else cpu_has_bf16_matmul(),
        "use_cpu": not on_gpu,  # transformers refuses bf16 on a machine without a GPU unless told so
        "gradient_checkpointing": True,
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "dataloader_pin_memory": on_gpu,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": logging_steps,
        "disable_tqdm": True,
    }
    settings.update(extra_args)  # the caller's word wins
    args = SFTConfig(**settings)
    peft_config = None
    if lora_r > 0:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return SFTTrainer(
        model=str(model_dir),
        args=args,
        train_dataset=Dataset.from_list(sft_records(trajectories)),
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def behaviour_clone(
    model_dir: str | os.PathLike[str],
    trajectories: Sequence[Trajectory],
    out_dir: str | os.PathLike[str],
    epochs: float = 2.0,
    lr: float = 1e-5,
    phase: Phase | None = None,
    **kwargs: Any,
) -> Path:
    """Fine-tune `model_dir` on the agent tokens of `trajectories`; write an HF folder to `out_dir`.

    The result is a plain model folder (a LoRA is merged in) with the tokenizer, so every policy
    backend and `GRPOUpdater` load it like the original. `phase`: a console line with the optimizer
    steps and the loss (TRL's own printing of its logs is then left out); its `values` end up holding
    `warm_start/loss` (the last logged) and `warm_start/train_loss` (the mean over training). Other
    keyword arguments: see `make_sft_trainer`. Returns `out_dir`.
    """
    out = Path(out_dir)
    work = Path(tempfile.mkdtemp(prefix="gymwire-sft-"))
    if phase is not None:
        kwargs.setdefault("logging_steps", 1)  # a loss for the console line at every step
    try:
        trainer = make_sft_trainer(model_dir, trajectories, work, epochs=epochs, lr=lr, **kwargs)
        if phase is not None:
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)
            trainer.add_callback(_progress_callback(phase))
        result = trainer.train()
        log.info("behaviour cloning: %s", result.metrics)
        if phase is not None:
            if "train_loss" in result.metrics:
                phase.values["warm_start/train_loss"] = float(result.metrics["train_loss"])
            phase.update(_cloning_text(phase))
        model = trainer.model
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out), safe_serialization=True)
        trainer.processing_class.save_pretrained(str(out))
        del trainer, model, result
        if phase is not None:
            loss = _cloning_text(phase).removeprefix("steps")
            steps = f"{phase.done} step{'s' * (phase.done != 1)}"
            phase.finish(f"{steps} on {len(trajectories)} episodes{loss}  -> {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        # The caller loads the saved folder next (GRPO): this model and its optimizer state must be gone.
        release_memory()
    return out


def _cloning_text(phase: Phase) -> str:
    """`steps  loss 0.8123 (mean 1.0345)`: the last logged loss, and the mean over training once known."""
    loss, mean = phase.values.get("warm_start/loss"), phase.values.get("warm_start/train_loss")
    text = "steps" if loss is None else f"steps  loss {loss:.4f}"
    return text if mean is None else f"{text} (mean {mean:.4f})"


def _progress_callback(phase: Phase) -> Any:
    """A transformers TrainerCallback that shows the optimizer steps and the latest loss on `phase`."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            phase.total = state.max_steps
            phase.update(_cloning_text(phase), done=state.global_step, force=True)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            phase.update(_cloning_text(phase), done=state.global_step)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                phase.values["warm_start/loss"] = float(logs["loss"])
                phase.update(_cloning_text(phase), done=state.global_step)

    return Progress()

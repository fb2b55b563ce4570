"""GRPO policy update on token-exact, multi-turn, masked trajectories.

`GRPOUpdater.step(trajectories)` takes finished episodes from the rollout engine (any mix of tasks and
environments the schedule chose), turns rewards into group-relative advantages (by `group_id`, aborted
episodes left out) and takes one optimizer step of the token-level clipped policy gradient on the
tokens the model sampled (`loss_mask == 1`), in micro-batches packed to a token budget, optionally
with a k3 KL penalty to a frozen reference policy. The sampler's own log-probs (`Trajectory.logprobs`)
enter the loss as the PPO ratio's old policy or as a truncated importance weight (GRPOConfig's
`old_logprobs` and `importance_sampling`). With `advantage: turn` each turn's tokens carry their own
advantage instead, GiGPO's episode-plus-step credit (trainer/turn_credit.py).

The loss is this project's own, not TRL's `GRPOTrainer`: TRL owns the training loop (it draws the
prompts, so the schedule has no place), groups episodes in fixed-size blocks (an aborted one cannot be
dropped), ignores the sampler's log-probs without its own vLLM and batches by sequence count. The
details, against trl 1.16, are in docs/grpo-and-trl.md; tests/test_grpo.py checks them. peft (LoRA),
safetensors and the HF Trainer's checkpoint file names are kept.

The parts, by purpose: the maths in trainer/grpo_loss.py (advantages, the clipped loss, importance
weights, the chunked fp32 log-softmax), the packing of a step into micro-batches in
trainer/microbatches.py, the checkpoint files in trainer/checkpoint_files.py; this module owns the
model, the optimizer and the step, and still offers the names those modules define.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gymwire.trainer.checkpoint_files import (
    OPTIMIZER_FILE,
    SCHEDULER_FILE,
    STATE_FILE,
    read_state,
    read_weights,
    tied_keys,
    write_hf_folder,
    write_state,
)
from gymwire.trainer.distributed import (
    Distributed,
    accumulate,
    clip_grad_norm_,
    full_checkpoint_state,
    full_state_items,
    hf_name,
    load_full_checkpoint_state,
    shard_model,
)
from gymwire.trainer.grpo_loss import (
    LOGSOFTMAX_CHUNK_ELEMENTS,
    Advantages,
    clipped_policy_loss,
    group_advantages,
    importance_weights,
    selected_logprobs,
    token_logprobs,
)
from gymwire.trainer.microbatches import (
    Batching,
    MicroBatch,
    build_microbatches,
    build_plans,
    pack_microbatches,
    validate_trajectory,
)
from gymwire.trainer.renamed import renamed
from gymwire.trainer.settings import GRPOConfig, LoRAConfig
from gymwire.trainer.turn_credit import turn_advantages
from gymwire.trainer.types import Trajectory

__all__ = [
    "LOGSOFTMAX_CHUNK_ELEMENTS",
    "OPTIMIZER_FILE",
    "SCHEDULER_FILE",
    "STATE_FILE",
    "Advantages",
    "GRPOConfig",
    "GRPOUpdater",
    "LoRAConfig",
    "MicroBatch",
    "clipped_policy_loss",
    "group_advantages",
    "importance_weights",
    "pack_microbatches",
    "selected_logprobs",
    "token_logprobs",
    "validate_trajectory",
]

if not TYPE_CHECKING:
    __getattr__ = renamed(__name__, {"LoRASettings": "LoRAConfig"}, globals())

log = logging.getLogger("gymwire.trainer")


# ----------------------------------------------------------------------------------------------
# The updater
# ----------------------------------------------------------------------------------------------


class GRPOUpdater:
    """Owns the policy being trained, its optimizer, the reference policy and the step counter.

    `model` is the live module: an in-process policy backend can generate with it directly (it is
    left in eval mode between steps). For a separate inference engine (vLLM), `export(dir)` writes
    an ordinary HF folder with any LoRA merged in.

    Resuming: construct with the *original* model (it is also the KL reference), then `load(ckpt)`.
    """

    def __init__(
        self,
        model_dir_or_model: str | os.PathLike[str] | torch.nn.Module,
        config: GRPOConfig | None = None,
        *,
        tokenizer: Any | None = None,
        dist: Distributed | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config or GRPOConfig()
        cfg = self.config
        self.device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # Under torchrun every rank holds an FSDP2 shard of the policy (and of the reference).
        self.dist = dist if dist is not None else Distributed(device=self.device)
        if self.dist.enabled:
            self.device = self.dist.device
        # FSDP2 is run one forward per backward here; the shared prompt's second call is left out there.
        self._share_prefix = self.config.share_prefix and not self.dist.enabled
        self.precision = cfg.resolved_precision(self.device.type)
        self.mixed_precision = self.precision == "bf16-mixed"
        # bf16-mixed keeps fp32 master weights (and AdamW state) and computes in bf16 under autocast;
        # bf16 stores the weights themselves in bf16, AdamW's state follows them.
        weights_dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.global_step = 0

        # Hugging Face and PEFT models: their attributes (config, save_pretrained...) are dynamic.
        base: Any
        self.model: Any
        if isinstance(model_dir_or_model, torch.nn.Module):
            base = model_dir_or_model
            self.model_dir: Path | None = None
        else:
            self.model_dir = Path(model_dir_or_model)
            base = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=weights_dtype)
            if tokenizer is None:
                tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir))
        self.tokenizer = tokenizer
        pad = getattr(tokenizer, "pad_token_id", None) if tokenizer is not None else None
        self.pad_token_id = int(pad if pad is not None else (base.config.pad_token_id or 0))

        # Reference policy: with LoRA the base weights are the reference (adapters disabled), so no
        # copy is needed; with full fine-tuning a frozen copy is kept, only when beta != 0.
        self.ref_model: Any = None
        if cfg.lora.rank > 0:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=cfg.lora.rank,
                lora_alpha=cfg.lora.alpha,
                lora_dropout=cfg.lora.dropout,
                target_modules=cfg.lora.target_modules,
                task_type="CAUSAL_LM",
            )
            # peft keeps adapters in fp32 by default; pure bf16 means every trained tensor in bf16.
            self.model = get_peft_model(base, lora, autocast_adapter_dtype=self.precision != "bf16")
        else:
            self.model = base
            if cfg.beta != 0.0:
                # Only ever evaluated without gradients: under bf16 maths its fp32 copy would be waste.
                ref_dtype = torch.float32 if self.precision == "fp32" else torch.bfloat16
                self.ref_model = copy.deepcopy(base).to(ref_dtype).eval().requires_grad_(False)
                self.ref_model = shard_model(
                    self.ref_model, self.dist, precision="fp32" if self.precision == "fp32" else "bf16"
                )
        if cfg.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if cfg.lora.rank > 0:
                self.model.enable_input_require_grads()
        # One process: moved to its device. Under torchrun: sharded; the optimizer below then holds
        # only this rank's shard of the weights and of AdamW's state.
        self.model = shard_model(self.model, self.dist, precision=self.precision, cpu_offload=cfg.cpu_offload)
        self.model.eval()

        params = [p for p in self.model.parameters() if p.requires_grad]
        betas = (cfg.adam_betas[0], cfg.adam_betas[1])
        self.optimizer: torch.optim.Optimizer
        if self.precision == "bf16":
            # torch's AdamW would round nearly every update of bf16 weights back to the old value.
            from gymwire.trainer.bf16_adamw import BF16AdamW

            self.optimizer = BF16AdamW(params, lr=cfg.learning_rate, betas=betas, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, betas=betas, weight_decay=cfg.weight_decay)
        warmup = cfg.warmup_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup > 0 else 1.0
        )

    # -- public -------------------------------------------------------------------------------

    @property
    def is_lora(self) -> bool:
        return self.config.lora.rank > 0

    def step(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        """`updates_per_step` optimizer steps on these episodes; returns metrics. Advances `global_step`
        even when every group was skipped (the schedule's step count and the optimizer's may then
        differ by the skipped steps: `updated` says which). A non-finite gradient is never applied:
        that mini-batch is skipped and counted (`nonfinite_skipped`)."""
        started = time.perf_counter()
        adv = self._advantages(trajectories)
        scored = [t for t in trajectories if not t.aborted]
        # What the tokens carry: the episodes' advantages, or with turn-level credit each turn's.
        carried = [a for turns in adv.turn_advantages for a in turns] if adv.turn_advantages else adv.advantages
        metrics: dict[str, float] = {
            "step": float(self.global_step + 1),
            "groups": float(adv.groups),
            "skipped_groups": float(adv.skipped_groups),
            "nonfinite_groups": float(adv.nonfinite_groups),
            "aborted": float(adv.aborted),
            "sequences": float(len(adv.trajectories)),
            "windowed_turns": float(sum(len(t.windowed_turns) for t in adv.trajectories)),
            "reward_mean": _mean([t.reward for t in scored if math.isfinite(t.reward)]),
            "advantage_mean": _mean(carried),
            "advantage_abs_mean": _mean([abs(a) for a in carried]),
            "lr": float(self.scheduler.get_last_lr()[0]),
        }
        if self.config.advantage == "turn":
            metrics["step_only_groups"] = float(adv.step_only_groups)
            metrics["anchor_groups"] = float(adv.anchor_groups)
        plans = self._plans(adv)
        tokens = sum(float(b.mask.sum()) for plan in plans for b in plan)
        metrics["tokens"] = tokens
        metrics["microbatches"] = float(sum(len(plan) for plan in plans))
        if tokens == 0:
            metrics.update(
                loss=0.0,
                pg_loss=0.0,
                kl=0.0,
                clip_fraction=0.0,
                ratio_mean=1.0,
                grad_norm=0.0,
                optimizer_steps=0.0,
                nonfinite_skipped=0.0,
                updated=0.0,
            )
            metrics.update(_mismatch_metrics([]))
        else:
            if len(plans) > 1:
                # Later mini-batches see weights the earlier ones moved: their "old" policy is the one
                # that sampled, so its log-probs are taken now, before any update.
                for plan in plans:
                    for batch in plan:
                        batch.trainer_old = self._logprobs(self.model, batch)
            sums: dict[str, float] = defaultdict(float)
            gaps: dict[int, torch.Tensor] = {}
            norms, skipped = [], 0
            self.model.train()
            try:
                for plan in plans:
                    self.optimizer.zero_grad(set_to_none=True)
                    # Under torchrun each rank runs its share of the micro-batches; the sums come back
                    # over all ranks, and FSDP sums the gradients.
                    for key, value in accumulate(plan, lambda b: self._loss(b, gaps), self.dist).items():
                        sums[key] += value
                    params = [p for g in self.optimizer.param_groups for p in g["params"]]
                    grad_norm = clip_grad_norm_(params, self.config.max_grad_norm)
                    if math.isfinite(grad_norm):
                        self.optimizer.step()
                        norms.append(grad_norm)
                    else:
                        skipped += 1
                    self.optimizer.zero_grad(set_to_none=True)
                if norms:  # the warm-up counts applied steps
                    self.scheduler.step()
            finally:
                self.model.eval()
            metrics.update(self._summarise(sums, tokens, len(plans)))
            metrics.update(_mismatch_metrics(self._gathered(gaps)))
            metrics["grad_norm"] = _mean(norms) if norms else float("nan")
            metrics["optimizer_steps"] = float(len(norms))
            metrics["nonfinite_skipped"] = float(skipped)
            metrics["updated"] = 1.0 if norms else 0.0
        self.global_step += 1
        metrics["seconds"] = time.perf_counter() - started
        return metrics

    @torch.no_grad()
    def objective(self, trajectories: Sequence[Trajectory]) -> dict[str, float]:
        """The step's loss and statistics at the current weights, without changing anything."""
        plans = self._plans(self._advantages(trajectories))
        tokens = sum(float(b.mask.sum()) for plan in plans for b in plan)
        sums: dict[str, float] = defaultdict(float)
        gaps: dict[int, torch.Tensor] = {}
        for plan in plans:
            for key, value in accumulate(plan, lambda b: self._loss(b, gaps), self.dist, backward=False).items():
                sums[key] += value
        return {
            **self._summarise(sums, tokens, max(len(plans), 1)),
            **_mismatch_metrics(self._gathered(gaps)),
            "tokens": tokens,
        }

    @torch.no_grad()
    def sequence_logprobs(self, token_ids: Sequence[int], temperature: float = 1.0) -> list[float]:
        """The trainer's log p(token_t | tokens_<t) of one sequence (position 0: 0.0): what an inference
        engine holding the same weights reports when it scores the sequence."""
        ids = torch.tensor([list(token_ids)], dtype=torch.long, device=self.device)
        with self._autocast():
            logps = token_logprobs(self.model, ids, torch.ones_like(ids), 1, temperature)
        return [0.0, *logps[0].float().tolist()]

    def named_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The current policy's tensors in Hugging Face naming, LoRA merged, one at a time: what an
        inference engine loads in memory (`Policy.update_weights`). The tensors are the live ones
        (no copies) except LoRA-merged weights, which are new tensors; consume the iterator to the end
        before the next step. Under torchrun every rank must consume it (each tensor is gathered from
        the shards); rank 0 uses the tensors."""
        if self.dist.enabled or self.is_lora:
            # LoRA is merged layer by layer into new tensors, never into the live weights: a consumer
            # holds what it was given until it has a bucket's worth (vLLM, disk shards), past the
            # end of this iterator, where an in-place merge would already have been undone.
            tied = sorted(tied_keys(self._hf_model()))
            embedding = _input_embedding_name(self._hf_model()) if tied else None
            for name, tensor in full_state_items(self.model, self.dist):
                yield name, tensor
                if name == embedding:  # a tied weight comes once, as the embedding; the engine wants every name
                    for key in tied:
                        yield key, tensor
            return
        for name, tensor in self.model.state_dict().items():
            yield name, tensor.detach()

    def save(self, directory: str | os.PathLike[str], *, weights_only: bool = False) -> Path:
        """Checkpoint: weights (full model, or the LoRA adapter), tokenizer, optimizer, scheduler, step.

        A full-model checkpoint is itself an HF folder any backend can load; a LoRA checkpoint is a
        PEFT adapter folder (use `export` for a merged HF folder). `weights_only` leaves out the
        optimizer state (twice the model's size in fp32): a resume from it restarts AdamW's moments.
        """
        out = Path(directory)
        if self.dist.enabled:
            return self._save_sharded(out, weights_only)
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(out), safe_serialization=True)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(out))
        if not weights_only:
            torch.save(self.optimizer.state_dict(), out / OPTIMIZER_FILE)
        torch.save(self.scheduler.state_dict(), out / SCHEDULER_FILE)
        write_state(out, self._state(weights_only))
        return out

    def load(self, directory: str | os.PathLike[str]) -> None:
        """Restore a `save`d checkpoint into this updater, in place (holders of `model` see it)."""
        src = Path(directory)
        state = read_state(src)
        if self.dist.enabled:
            self._load_sharded(src, state)
            return
        if bool(state["lora"]) != self.is_lora:
            kind = "a LoRA adapter" if state["lora"] else "a full model"
            raise ValueError(f"{src} holds {kind}; this updater has lora.rank={self.config.lora.rank}")
        if self.is_lora:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            weights = load_file(str(src / "adapter_model.safetensors"), device=str(self.device))
            result = set_peft_model_state_dict(self.model, weights)
            unexpected = getattr(result, "unexpected_keys", [])
            if unexpected:
                raise ValueError(f"{src}: adapter weights do not match this model: {unexpected[:3]}...")
        else:
            weights = read_weights(src, str(self.device))
            missing, unexpected = self.model.load_state_dict(weights, strict=False)
            # Tied weights (lm_head = embeddings) are saved once; anything else missing is an error.
            missing = [k for k in missing if k not in tied_keys(self.model)]
            if missing or unexpected:
                raise ValueError(
                    f"{src}: weights do not match this model (missing {missing[:3]}, unexpected {unexpected[:3]})"
                )
        if (src / OPTIMIZER_FILE).exists():
            self.optimizer.load_state_dict(torch.load(src / OPTIMIZER_FILE, map_location=self.device))
        else:
            log.warning("%s holds weights only: AdamW starts with fresh moments", src)
        self.scheduler.load_state_dict(torch.load(src / SCHEDULER_FILE, map_location=self.device))
        self.global_step = int(state["global_step"])

    def export(self, directory: str | os.PathLike[str]) -> Path:
        """An ordinary HF folder of the current policy (LoRA merged) for vLLM / evaluation / SFT output."""
        out = Path(directory)
        if self.dist.enabled:
            weights = {name: tensor.cpu() for name, tensor in self.named_weights()}
            if self.dist.is_main:
                write_hf_folder(out, weights, self._hf_model(), self.tokenizer)
            return out
        out.mkdir(parents=True, exist_ok=True)
        if self.is_lora:  # the merged weights; the others copied (the model keeps its own)
            merged = {name: tensor.clone() for name, tensor in self.named_weights()}
            self.model.get_base_model().save_pretrained(str(out), state_dict=merged, safe_serialization=True)
        else:
            self.model.save_pretrained(str(out), safe_serialization=True)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(str(out))
        return out

    # -- internals ----------------------------------------------------------------------------

    def _hf_model(self) -> Any:
        return self.model.get_base_model() if self.is_lora else self.model

    def _save_sharded(self, out: Path, weights_only: bool) -> Path:
        """Checkpoint of a sharded run: full model (HF names, LoRA merged) and, unless weights_only,
        the full optimizer state keyed by parameter name, written by rank 0 (every rank must call)."""
        if self.is_lora:
            raise NotImplementedError(
                "checkpoints of LoRA training under torchrun are not supported yet; "
                "train LoRA in one process (it fits one GPU) or use full fine-tuning"
            )
        model_state, optimizer_state = full_checkpoint_state(self.model, self.optimizer)
        if self.dist.is_main:
            write_hf_folder(out, model_state, self._hf_model(), self.tokenizer)
            if not weights_only:
                torch.save(optimizer_state, out / OPTIMIZER_FILE)
            torch.save(self.scheduler.state_dict(), out / SCHEDULER_FILE)
            write_state(out, self._state(weights_only, sharded=True))
        self.dist.barrier()
        return out

    def _load_sharded(self, src: Path, state: dict[str, Any]) -> None:
        """Restore a sharded run's checkpoint: rank 0 reads the files, every rank takes its shards."""
        if self.is_lora or state["lora"]:
            raise NotImplementedError("resuming LoRA training under torchrun is not supported yet")
        main = self.dist.is_main
        weights = read_weights(src, "cpu") if main else {}
        if main:
            for key in tied_keys(self._hf_model()):
                weights.setdefault(key, weights["model.embed_tokens.weight"])
        optim_file = src / OPTIMIZER_FILE
        has_optimizer = optim_file.exists()
        optimizer_state = torch.load(optim_file, map_location="cpu") if main and has_optimizer else {}
        load_full_checkpoint_state(
            self.model,
            self.optimizer if has_optimizer else None,
            weights,
            optimizer_state if has_optimizer else None,
            self.dist,
        )
        if not has_optimizer:
            log.warning("%s holds weights only: AdamW starts with fresh moments", src)
        self.scheduler.load_state_dict(torch.load(src / SCHEDULER_FILE, map_location="cpu"))
        self.global_step = int(state["global_step"])

    def _state(self, weights_only: bool, *, sharded: bool = False) -> dict[str, Any]:
        """trainer_state.json: the step, what the checkpoint holds, and the config it was trained with."""
        return {
            "global_step": self.global_step,
            "weights_only": weights_only,
            "lora": self.is_lora,
            **({"sharded": True} if sharded else {}),
            "reference_model": str(self.model_dir) if self.model_dir else None,
            "config": dataclasses.asdict(self.config),
        }

    def _batching(self) -> Batching:
        cfg = self.config
        return Batching(cfg.token_budget, self.pad_token_id, cfg.loss_normalization, self._share_prefix, self.device)

    def _plans(self, adv: Advantages) -> list[list[MicroBatch]]:
        """The step's mini-batches as micro-batches: what `step` trains on and `objective` scores."""
        return build_plans(adv, self.config.updates_per_step, self._batching())

    def _microbatches(self, adv: Advantages) -> list[MicroBatch]:
        """All of `adv` as one mini-batch's micro-batches."""
        return build_microbatches(adv, self._batching())

    def _autocast(self):
        if self.mixed_precision:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return torch.autocast(device_type=self.device.type, enabled=False)

    def _advantages(self, trajectories: Sequence[Trajectory]) -> Advantages:
        cfg = self.config
        if cfg.advantage == "turn":
            adv = turn_advantages(
                trajectories,
                gamma=cfg.turn_gamma,
                weight=cfg.turn_weight,
                scale_rewards=cfg.scale_rewards,
                eps=cfg.advantage_eps,
            )
        else:
            adv = group_advantages(trajectories, scale_rewards=cfg.scale_rewards, eps=cfg.advantage_eps)
        for traj in adv.trajectories:
            validate_trajectory(traj)
        return adv

    def _logprobs(self, model: torch.nn.Module, batch: MicroBatch) -> torch.Tensor:
        with torch.no_grad(), self._autocast():
            return token_logprobs(
                model, batch.input_ids, batch.attention_mask, batch.positions, self.config.temperature, batch.shared
            ).float()

    def _reference_logps(self, batch: MicroBatch) -> torch.Tensor | None:
        if self.config.beta == 0.0:
            return None
        if self.is_lora:
            with self.model.disable_adapter():
                return self._logprobs(self.model, batch)
        assert self.ref_model is not None
        return self._logprobs(self.ref_model, batch)

    def _loss(self, batch: MicroBatch, gaps: dict[int, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """One micro-batch's weighted loss and its sums for the step metrics; records the
        |trainer - sampler| log-prob gaps of its tokens in `gaps` (once per micro-batch)."""
        cfg = self.config
        ref = self._reference_logps(batch)
        with self._autocast():
            logps = token_logprobs(
                self.model, batch.input_ids, batch.attention_mask, batch.positions, cfg.temperature, batch.shared
            ).float()
        # The trainer's log-probs under the weights that sampled: computed before the first update, or
        # these very ones when this is the step's first (or only) mini-batch.
        trainer_old = batch.trainer_old if batch.trainer_old is not None else logps.detach()
        sampler = batch.sampler_logps
        known = (batch.mask > 0) & ~torch.isnan(sampler)
        gaps[id(batch)] = (trainer_old - sampler)[known].abs().cpu()
        is_weights, capped = None, torch.zeros_like(known)
        if cfg.old_logprobs == "trainer":
            old = trainer_old
            if cfg.importance_sampling != "none":
                is_weights, capped = importance_weights(
                    trainer_old, sampler, batch.mask, cap=cfg.importance_cap, mode=cfg.importance_sampling
                )
        else:  # the sampler's own log-probs; a backend that gives none falls back to on-policy (ratio 1)
            old = torch.where(torch.isnan(sampler), trainer_old, sampler)
        eps_high = cfg.epsilon if cfg.epsilon_high is None else cfg.epsilon_high
        per_token, kl, ratio, clipped = clipped_policy_loss(
            logps,
            old,
            batch.advantages,
            batch.mask,
            epsilon_low=cfg.epsilon,
            epsilon_high=eps_high,
            dual_clip=cfg.dual_clip,
            is_weights=is_weights,
            ref_logps=ref,
            beta=cfg.beta,
        )
        loss = (per_token * batch.weights).sum()
        m = batch.mask
        return loss, {
            "kl_sum": float((kl.detach() * m).sum()),
            "kl_weighted": float((kl.detach() * batch.weights).sum()),
            "clipped": float(clipped.sum()),
            "ratio_sum": float((ratio.detach() * m).sum()),
            "is_weight_sum": float((is_weights * m).sum()) if is_weights is not None else float(m.sum()),
            "is_capped": float(capped.sum()),
        }

    def _gathered(self, gaps: dict[int, torch.Tensor]) -> list[torch.Tensor]:
        """Every rank's gaps (each rank scored its own micro-batches), for step-wide quantiles."""
        mine = torch.cat(list(gaps.values())) if gaps else torch.zeros(0)
        if not self.dist.enabled:
            return [mine]
        everyone: list[Any] = [None] * self.dist.world_size
        torch.distributed.all_gather_object(everyone, mine)
        return everyone

    def _summarise(self, sums: dict[str, float], tokens: float, minibatches: int) -> dict[str, float]:
        denom = max(tokens, 1.0)
        loss = sums["loss"] / minibatches  # each mini-batch's loss is normalised on its own
        kl_term = self.config.beta * sums["kl_weighted"] / minibatches
        return {
            "loss": loss,
            "pg_loss": loss - kl_term,
            "kl": sums["kl_sum"] / denom,
            "clip_fraction": sums["clipped"] / denom,
            "ratio_mean": sums["ratio_sum"] / denom if tokens else 1.0,
            "is_weight_mean": sums["is_weight_sum"] / denom if tokens else 1.0,
            "is_capped_fraction": sums["is_capped"] / denom,
        }


def _input_embedding_name(model: Any) -> str:
    """The Hugging Face name of the input embedding's weight (`model.embed_tokens.weight`,
    `transformer.wte.weight`...): the name a tied lm_head is streamed under first."""
    embeddings = model.get_input_embeddings()
    return next(hf_name(f"{name}.weight") for name, module in model.named_modules() if module is embeddings)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _mismatch_metrics(gaps: list[torch.Tensor]) -> dict[str, float]:
    """|trainer - sampler| log-prob over the trained tokens: how far the sampler's numbers are from the
    trainer's for the same weights (kernels, precision, a lagging server). Large values mean the
    importance weights, not the advantages, steer the update."""
    values = torch.cat(gaps) if gaps else torch.zeros(0)
    if values.numel() == 0:
        return {"mismatch_abs_mean": 0.0, "mismatch_abs_p99": 0.0, "mismatch_abs_max": 0.0, "mismatch_tokens": 0.0}
    values = values.double()
    return {
        "mismatch_abs_mean": float(values.mean()),
        "mismatch_abs_p99": float(torch.quantile(values, 0.99)) if values.numel() > 1 else float(values[0]),
        "mismatch_abs_max": float(values.max()),
        "mismatch_tokens": float(values.numel()),
    }

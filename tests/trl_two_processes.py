"""One GRPO step of TRL's GRPOTrainer with gymwire's rollout on two processes; run by
tests/test_integration_trl.py under torchrun with two processes on CPU (Accelerate joins them over gloo).

Each process writes `rank<N>.json` into --out: the prompts its rollout played, the episodes counted,
a checksum of the weights before and after the step, and what the rollout does on that process when
the trainer samples from TRL's vLLM server (see `server_mode`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer

from gymwire.integrations.trl import GymwireRollout, episode_reward
from gymwire.trainer.model import resolve_model
from gymwire.trainer.rollout import EnvConfig


def text_score(completions: list[Any], completion_ids: list[list[int]], **_: Any) -> list[float]:
    """The default model rarely solves a task in one turn (return 0 for all) and every turn fills its
    8 tokens; a score of the sampled ids gives the group a spread, so the step has a gradient."""
    return [float(sum(ids) % 101) for ids in completion_ids]


def checksum(model: torch.nn.Module) -> float:
    return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


def server_mode(trainer: GRPOTrainer, server: str, vllm_url: str) -> dict[str, Any]:
    """TRL's state on this process for `use_vllm=True, vllm_mode="server"`, built by TRL's own class,
    then the rollout's choice of sampler. The main process's part needs CUDA (TRL's client joins the
    server's NCCL weight group at construction), so it only takes part in the constructor's closing
    barrier; no vLLM server runs here, so a process that reaches for the configured address is
    refused, which is the expected outcome."""
    if trainer.accelerator.is_main_process:
        trainer.accelerator.wait_for_everyone()
        return {}
    from trl.generation.vllm_generation import VLLMGeneration

    # GRPOTrainer.__init__ sets these three for that config (vllm_generation from the same arguments).
    trainer.vllm_generation = VLLMGeneration(
        model=trainer.model,
        accelerator=trainer.accelerator,
        processing_class=trainer.processing_class,
        mode="server",
        server_base_url=vllm_url,
    )
    trainer.use_vllm = True
    trainer.args.vllm_mode = "server"
    rollout = GymwireRollout([server])
    try:
        rollout._policy_for(trainer)
        error = None
    except Exception as exc:  # noqa: BLE001 - recorded for the test to judge
        error = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    finally:
        rollout.close()
    print(f"rank {trainer.accelerator.process_index}, sampler for TRL's vLLM server: {error}", file=sys.stderr)
    from gymwire.integrations.trl import vllm_server_url

    return {"policy_error": error, "server_url": vllm_server_url(trainer)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--vllm-url", required=True, help="an address where no server listens")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

    rollout = GymwireRollout([args.server], max_turn_tokens=8, env_settings={"textcraft": EnvConfig(max_turns=1)})
    played: list[str] = []

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        played.extend(prompts)
        return rollout(prompts, trainer)

    config = GRPOConfig(
        output_dir=str(Path(args.out) / "trainer"),
        max_steps=1,
        num_generations=2,
        per_device_train_batch_size=2,
        learning_rate=1e-4,
        beta=0.0,
        bf16=False,  # the processes run on CPU
        logging_steps=1,
        report_to="none",
        save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=str(resolve_model("smollm2")),
        args=config,
        train_dataset=rollout.dataset("textcraft", difficulty="easy", limit=2),
        reward_funcs=[episode_reward, text_score],
        rollout_func=rollout_func,
    )
    before = checksum(trainer.model)
    try:
        trainer.train()
    finally:
        rollout.close()
    record = {
        "rank": trainer.accelerator.process_index,
        "processes": trainer.accelerator.num_processes,
        "played": played,
        "episodes": rollout.stats.episodes,
        "dropped": rollout.stats.aborted_dropped,
        "weights_before": before,
        "weights_after": checksum(trainer.model),
        "global_step": trainer.state.global_step,
        "log": [e for e in trainer.state.log_history if "loss" in e],
        **server_mode(trainer, args.server, args.vllm_url),
    }
    Path(args.out, f"rank{record['rank']}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main()

"""Train with TRL's GRPOTrainer on gymwire servers.

    gymwire serve textcraft --port 50051 &
    python examples/trl/grpo_gymwire.py --server localhost:50051 --env textcraft --steps 2

Each GRPO step plays `--num-generations` multi-turn episodes of one task on the servers; TRL trains on
the tokens the model sampled (the environment's replies are masked out) with the episode's return as
the reward. Runs on CPU with the default model; pass --model for another local model folder.
"""

from __future__ import annotations

import argparse

import torch
from trl import GRPOConfig, GRPOTrainer

from gymwire.integrations.trl import GymwireRollout, episode_reward, episode_success
from gymwire.trainer.model import resolve_model
from gymwire.trainer.rollout import EnvConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", action="append", required=True, help="a gymwire server address (repeatable)")
    parser.add_argument("--env", required=True, help="the environment whose tasks make the dataset")
    parser.add_argument("--split", default="train")
    parser.add_argument("--difficulty", default="")
    parser.add_argument("--max-turns", type=int, default=4)
    parser.add_argument("--model", default="smollm2", help="a local model folder, or smollm2 (the default model)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--num-generations", type=int, default=2, help="episodes per task (the GRPO group)")
    parser.add_argument("--max-turn-tokens", type=int, default=24)
    parser.add_argument("--max-total-tokens", type=int, default=1024)
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    parser.add_argument("--output-dir", default="runs/trl-gymwire")
    args = parser.parse_args()

    rollout = GymwireRollout(
        args.server,
        max_turn_tokens=args.max_turn_tokens,
        max_total_tokens=args.max_total_tokens,
        env_settings={args.env: EnvConfig(max_turns=args.max_turns)},
    )
    config = GRPOConfig(
        output_dir=args.output_dir,
        max_steps=args.steps,
        num_generations=args.num_generations,
        per_device_train_batch_size=args.num_generations,
        learning_rate=args.learning_rate,
        beta=0.0,
        bf16=torch.cuda.is_available(),  # on CPU: fp32
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        reward_weights=[1.0, 0.0],  # success is logged, the return is what is trained on
    )
    trainer = GRPOTrainer(
        model=str(resolve_model(args.model)),
        args=config,
        train_dataset=rollout.dataset(args.env, split=args.split, difficulty=args.difficulty),
        reward_funcs=[episode_reward, episode_success],
        rollout_func=rollout,
    )
    try:
        trainer.train()
    finally:
        rollout.close()
    print(
        f"episodes: {rollout.stats.episodes}, aborted and retried: {rollout.stats.aborted_retried}, "
        f"aborted and dropped: {rollout.stats.aborted_dropped}"
    )


if __name__ == "__main__":
    main()

"""The trainer: rollouts against gymwire servers, policy backends, GRPO, schedules, evaluation."""

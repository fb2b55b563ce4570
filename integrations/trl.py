"""gymwire servers as multi-turn environments for TRL's `GRPOTrainer`.

Three things go into a TRL script:

    rollout = GymwireRollout(["localhost:50051"])            # servers by address, any mix
    trainer = GRPOTrainer(
        model=...,
        args=GRPOConfig(...),
        train_dataset=rollout.dataset("textcraft", split="train"),   # tasks from ListTasks
        reward_funcs=episode_reward,                         # the episode's return
        rollout_func=rollout,                                # plays the episodes
    )

TRL hands `rollout_func` each process's prompts, already repeated `num_generations` times. Every
prompt names a task (`gymwire:<env>/<task id>`); the rollout plays one episode of it against the
servers with gymwire's own episode loop (token-exact conversation, per-environment settings,
retries on another replica) and returns TRL's multi-turn contract: `prompt_ids` (up to the model's
first turn), `completion_ids` (everything after), `logprobs`, and `env_mask` (1 on tokens the
model sampled, 0 on the environment's replies and template framing, which TRL then leaves out of
the loss). An episode that infrastructure aborts after its retries is never scored: its reward is
None, which TRL treats as unscorable (left out of its group's baseline, advantage 0), and its mask
is all 0.

Generation: with `use_vllm=False` the trainer's live model samples (transformers generate, the
weights TRL just updated); with `use_vllm=True, vllm_mode="server"` the episodes sample from TRL's
vLLM server (`trl vllm-serve`), whose weights TRL syncs before each rollout; with several processes
(`accelerate launch`) each one plays its own share of the episodes against that server, after the main
process has pushed the weights. TRL's colocated vLLM is driven by TRL's own single-turn generate and is
not supported here.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from gymwire.client import ChannelOptions, EnvPool
from gymwire.client.loop_thread import LoopThread
from gymwire.trainer.policy.base import Policy
from gymwire.trainer.rollout import EnvConfig, RolloutConfig, RolloutEngine, RolloutStats, TaskRef

from .episodes import EpisodeTokens, check_single_sequence, episode_tokens, parse_task_key, task_key

__all__ = ["GymwireRollout", "episode_reward", "episode_success"]


def episode_reward(completions: Sequence[Any], episode_reward: Sequence[float | None], **_: Any) -> list[float | None]:
    """TRL reward function: the episode's return as the server scored it (None: aborted, unscored)."""
    return list(episode_reward)


def episode_success(completions: Sequence[Any], episode_success: Sequence[bool | None], **_: Any) -> list[float | None]:
    """TRL reward function: 1.0 for a solved task, 0.0 otherwise (None: aborted). Use it as a reward
    with weight 0 to log the success rate beside `episode_reward`."""
    return [None if s is None else float(s) for s in episode_success]


class GymwireRollout:
    """A TRL `rollout_func` that plays gymwire episodes; also builds the task dataset.

    `addresses`: the servers (several environments and replicas of each may be mixed).
    `max_turn_tokens`: new tokens per turn; `max_total_tokens`: the whole conversation's budget.
    `env_settings`: per-environment turn limits and action lists, as in gymwire's run configs.
    """

    def __init__(
        self,
        addresses: Iterable[str],
        *,
        max_turn_tokens: int = 64,
        max_total_tokens: int = 1024,
        env_settings: Mapping[str, EnvConfig] | None = None,
        system_prompt: str | None = None,
        abort_retries: int = 2,
        channel_options: ChannelOptions | None = None,
    ) -> None:
        self.addresses = list(addresses)
        self.env_settings = dict(env_settings or {})
        for settings in self.env_settings.values():
            check_single_sequence(settings)
        self.config = RolloutConfig(
            max_new_tokens=max_turn_tokens,
            max_total_tokens=max_total_tokens,
            abort_retries=abort_retries,
            system_prompt=system_prompt,
        )
        self._channel_options = channel_options
        self._loop = LoopThread("gymwire-trl-episodes")
        self._pool: EnvPool | None = None
        self._policy: Policy | None = None
        self.stats = RolloutStats()  # episodes played, retried and dropped, over the whole run

    # ---- the dataset -------------------------------------------------------------------------

    def task_keys(
        self, env: str, *, split: str = "train", difficulty: str = "", category: str = "", limit: int | None = None
    ) -> list[str]:
        """The keys of the tasks the environment lists (ListTasks)."""
        tasks = self._loop.run(self._list_tasks(env, split, difficulty, category, limit))
        if not tasks:
            raise ValueError(f"{env} lists no task for split={split!r} difficulty={difficulty!r} category={category!r}")
        return [task_key(TaskRef(env, t.id)) for t in tasks]

    def dataset(
        self, env: str, *, split: str = "train", difficulty: str = "", category: str = "", limit: int | None = None
    ) -> Any:
        """A `datasets.Dataset` with one row per task: `prompt` is the task's key."""
        from datasets import Dataset

        keys = self.task_keys(env, split=split, difficulty=difficulty, category=category, limit=limit)
        return Dataset.from_dict({"prompt": keys})

    async def _list_tasks(self, env: str, split: str, difficulty: str, category: str, limit: int | None):
        pool = await self._connected()
        return await pool.list_tasks(env, split, difficulty, category, limit)

    async def _connected(self) -> EnvPool:
        if self._pool is None:
            self._pool = await EnvPool(self.addresses, self._channel_options).connect()
        return self._pool

    # ---- the rollout -------------------------------------------------------------------------

    def __call__(self, prompts: Sequence[Any], trainer: Any) -> dict[str, list[Any]]:
        refs = [parse_task_key(_prompt_text(p)) for p in prompts]
        policy = self._policy_for(trainer)
        if _samples_from_server(trainer) and trainer.accelerator.num_processes > 1:
            # TRL pushes the new weights from the main process only and returns at once on the others:
            # no process may sample before that push is done.
            trainer.accelerator.wait_for_everyone()
        config = replace(
            self.config,
            temperature=float(getattr(trainer, "temperature", 1.0)),
            top_p=float(getattr(trainer, "top_p", 1.0)),
        )
        episodes = self._loop.run(self._play(refs, policy, config))
        return rollout_output(episodes)

    async def _play(self, refs: list[TaskRef], policy: Policy, config: RolloutConfig) -> list[EpisodeTokens]:
        pool = await self._connected()
        engine = RolloutEngine(pool, policy, config, self.env_settings)
        engine.stats = self.stats
        trajectories = await asyncio.gather(*(engine.episode(ref, f"trl/{i}") for i, ref in enumerate(refs)))
        filler = policy.stop_token_ids[0]
        return [episode_tokens(t, filler) for t in trajectories]

    def _policy_for(self, trainer: Any) -> Policy:
        if self._policy is not None:
            return self._policy
        tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
        if not getattr(trainer, "use_vllm", False):
            from gymwire.trainer.policy.hf import HFPolicy

            if trainer.accelerator.num_processes > 1 and _sharded(trainer):
                # Each process would generate with its shard while the others play episodes of other
                # lengths: the gathers of the sharded forward would never pair up.
                raise ValueError(
                    "GymwireRollout samples with the trainer's model only when each process holds the whole "
                    "model (DDP); with FSDP or DeepSpeed ZeRO-3 use TRL's vLLM server (use_vllm=True, "
                    "vllm_mode='server')"
                )

            model = trainer.accelerator.unwrap_model(trainer.model)
            self._policy = HFPolicy(model, tokenizer, name="trl-model")
        elif getattr(trainer.args, "vllm_mode", "") == "server":
            from gymwire.trainer.policy.openai import OpenAIPolicy

            self._policy = OpenAIPolicy(vllm_server_url(trainer), tokenizer=tokenizer, name="trl-vllm-server")
        else:
            raise ValueError(
                "GymwireRollout samples with the trainer's model (use_vllm=False) or TRL's vLLM server "
                "(use_vllm=True, vllm_mode='server'); the colocated vLLM engine is not supported"
            )
        return self._policy

    def close(self) -> None:
        """Close the connections and the policy (the trainer's model stays)."""
        if self._pool is not None:
            self._loop.run(self._pool.close())
            self._pool = None
        if self._policy is not None:
            self._policy.close()
            self._policy = None
        self._loop.close()


def _samples_from_server(trainer: Any) -> bool:
    return bool(getattr(trainer, "use_vllm", False)) and getattr(trainer.args, "vllm_mode", "") == "server"


def _sharded(trainer: Any) -> bool:
    if getattr(trainer, "is_fsdp_enabled", False):
        return True
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return plugin is not None and getattr(plugin, "zero_stage", 0) == 3


def vllm_server_url(trainer: Any) -> str:
    """The address of TRL's vLLM server, on every process. TRL opens its client (`vllm_client`) on
    the main process only; the address it was built from is set on all of them, and is read here
    the way TRL's client reads it."""
    generation = trainer.vllm_generation
    if generation.server_base_url is not None:
        parsed = urllib.parse.urlparse(generation.server_base_url)
        return f"{parsed.scheme or 'http'}://{parsed.netloc}{parsed.path}"
    return f"http://{generation.server_host}:{generation.server_port}"


def _prompt_text(prompt: Any) -> str:
    """A row's prompt: the task key as text, or a conversation whose last message holds it."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], Mapping):
        return str(prompt[-1].get("content", ""))
    raise ValueError(f"a gymwire dataset row's prompt is a task key, got {type(prompt).__name__}")


def rollout_output(episodes: Sequence[EpisodeTokens]) -> dict[str, list[Any]]:
    """TRL's multi-turn rollout contract, plus the fields the reward functions read."""
    return {
        "prompt_ids": [e.prompt_ids for e in episodes],
        "completion_ids": [e.response_ids for e in episodes],
        "logprobs": [e.response_logprobs for e in episodes],
        "env_mask": [e.response_mask for e in episodes],
        "episode_reward": [e.reward for e in episodes],
        "episode_success": [None if e.aborted else e.trajectory.success for e in episodes],
        "episode_turns": [e.turns for e in episodes],
    }

"""gymwire servers as SkyRL-gym environments (`skyrl-gym`, the env API SkyRL-train drives).

    import gymwire.integrations.skyrl  # registers "gymwire"
    env = skyrl_gym.make("gymwire", env_config={"servers": ["localhost:50051"]},
                         extras={"gymwire": {"task": "gymwire:textcraft/<task id>", "max_turns": 20}})
    messages, metadata = env.init(prompt)   # the opening messages (instruction + first observation)
    out = env.step(model_text)              # observations, reward (this step's), done, metadata

`extras` is the dataset row's extra fields: `gymwire.task` names the task (rows written by
`gymwire.integrations.verl_stages` carry it in `extra_info.gymwire`, which is read too).
`env_config.servers` is a list of addresses or environment -> address(es); episodes start on a
healthy replica. In SkyRL-train it is `environment.skyrl_gym.gymwire.servers`, a key that
`gymwire.integrations.skyrl_train` declares (SkyRL-train refuses undeclared ones). `step` leaves the
model's sampled tokens as they are (no `postprocessed_action`); the server's reading of the action
is in the step's metadata (`parsed_action`).

SkyRL-gym has no way to say "this sample failed for reasons outside the model": an episode whose
server dies raises `EpisodeAborted` from `step` rather than returning a reward.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput
from skyrl_gym.envs.registration import register

from gymwire.client import EnvPool
from gymwire.client.aio import AsyncEpisode
from gymwire.client.loop_thread import LoopThread
from gymwire.trainer.rollout import observation_text, task_info
from gymwire.trainer.sequence import opening_messages

from .episodes import episode_settings, parse_task_key, server_addresses

ENV_ID = "gymwire"
_LOOP: LoopThread | None = None
_POOLS: dict[tuple[str, ...], EnvPool] = {}


def _loop() -> LoopThread:
    """One loop for every env object of the process: SkyRL builds one env per sample."""
    global _LOOP
    if _LOOP is None:
        _LOOP = LoopThread("gymwire-skyrl")
    return _LOOP


async def _pool(addresses: tuple[str, ...]) -> EnvPool:
    if addresses not in _POOLS:
        _POOLS[addresses] = await EnvPool(addresses).connect()
    return _POOLS[addresses]


def _setting(env_config: Any, key: str) -> Any:
    """A key of `env_config`: a dict (skyrl-gym), an OmegaConf node, or SkyRL-train's typed section."""
    if env_config is None:
        return None
    if isinstance(env_config, Mapping):
        return env_config.get(key)
    return getattr(env_config, key, None)


class GymwireTextEnv(BaseTextEnv):
    """One gymwire episode as a SkyRL text environment (see the module's docstring)."""

    def __init__(self, env_config: Any = None, extras: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        extras = extras or {}
        servers = _setting(env_config, "servers")
        if not servers:
            raise ValueError(
                "the gymwire SkyRL env needs env_config.servers (in SkyRL-train: "
                "environment.skyrl_gym.gymwire.servers, declared by gymwire.integrations.skyrl_train)"
            )
        self.addresses = tuple(server_addresses(servers))
        spec = extras.get("gymwire") or (extras.get("extra_info") or {}).get("gymwire") or {}
        if not spec.get("task"):
            raise ValueError("the gymwire SkyRL env needs extras.gymwire.task (a gymwire task key)")
        self.ref = parse_task_key(spec["task"])
        self.settings = episode_settings(spec)
        self.system_prompt = _setting(env_config, "system_prompt")
        self.max_turns = self.settings.max_turns  # BaseTextEnv's field; 0: the environment's own limit
        self.episode: AsyncEpisode | None = None

    def init(self, prompt: Any) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """Start the episode; the opening messages replace the dataset's placeholder prompt."""
        return _loop().run(self._start())

    async def _start(self) -> tuple[list[dict[str, str]], dict[str, Any]]:
        pool = await _pool(self.addresses)
        info = await pool.info(self.ref.env)
        self.episode = await pool.reset(
            self.ref.env,
            self.ref.task_id,
            include_valid_actions=self.settings.show_valid_actions,
            max_turns=self.settings.max_turns,
        )
        opening = opening_messages(
            observation_text(self.episode.observation), instruction=info.instruction, system=self.system_prompt
        )
        return opening, {"env": self.ref.env, "task_id": self.ref.task_id, **task_info(self.episode.task)}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        if self.episode is None:
            raise RuntimeError("step before init")
        obs = _loop().run(self.episode.step(action))  # EpisodeAborted when infrastructure fails
        self.turns += 1
        done = obs.terminated or obs.truncated
        return BaseTextEnvStepOutput(
            observations=[] if done else [{"role": "user", "content": observation_text(obs)}],
            reward=obs.reward,
            done=done,
            # No postprocessed_action: SkyRL's generator would put it in place of the sampled text and
            # re-tokenize it, so the trained tokens would not be the ones the model sampled.
            metadata={
                "action_valid": obs.action_valid,
                "success": obs.success,
                "truncated": obs.truncated,
                "parsed_action": obs.parsed_action,
            },
        )

    def close(self) -> None:
        if self.episode is not None:
            _loop().run(self.episode.close())
            self.episode = None


register(id=ENV_ID, entry_point=f"{__name__}:GymwireTextEnv")

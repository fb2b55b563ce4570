"""Gymnasium adapter: a gymwire server as a `gymnasium.Env` with text observations and actions."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium import spaces

from gymwire.client.connection import ChannelOptions
from gymwire.client.sync import EnvClient, Episode


def _text_space(max_length: int) -> spaces.Text:
    # Any printable text: gymnasium's Text needs a charset; agents' turns are arbitrary strings.
    return spaces.Text(max_length=max_length, charset="".join(chr(c) for c in range(32, 127)) + "\n\t")


class GymwireEnv(gym.Env):
    """`reset(options={"task_id": ...})` or a seeded sample of `split`/`difficulty`; `step(text)`.

    info carries task, success, action_valid, parsed_action, valid_actions (when asked) and the
    server's structured info. The server enforces the turn limit (truncated).
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        address: str,
        *,
        split: str = "",
        difficulty: str = "",
        include_valid_actions: bool = False,
        max_turns: int = 0,
        options: ChannelOptions | None = None,
    ):
        self._client = EnvClient(address, options)
        self.env_info = self._client.info()
        self.split, self.difficulty = split, difficulty
        self.include_valid_actions = include_valid_actions
        self.max_turns = max_turns
        self.observation_space = _text_space(1 << 20)
        self.action_space = _text_space(self.env_info.features.max_action_bytes)
        self._episode: Episode | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self._episode is not None:
            self._episode.close()
        task_id = (options or {}).get("task_id")
        if task_id is None and seed is None:
            seed = int(self.np_random.integers(0, 2**31))
        self._episode = self._client.reset(
            task_id,
            split=self.split,
            difficulty=self.difficulty,
            seed=seed,
            include_valid_actions=self.include_valid_actions,
            max_turns=self.max_turns,
        )
        return self._episode.observation.text, self._info(self._episode.observation)

    def step(self, action: str):
        if self._episode is None:
            raise RuntimeError("call reset() before step()")
        o = self._episode.step(action)
        return o.text, o.reward, o.terminated, o.truncated, self._info(o)

    def _info(self, o) -> dict[str, Any]:
        assert self._episode is not None
        info: dict[str, Any] = {
            "task_id": self._episode.task.id,
            "success": o.success,
            "action_valid": o.action_valid,
            "parsed_action": o.parsed_action,
            "turn": o.turn,
        }
        if o.valid_actions_included:
            info["valid_actions"] = list(o.valid_actions)
        info.update(dict(o.info.items()))
        return info

    def render(self) -> str:
        return self._episode.observation.text if self._episode else ""

    def close(self) -> None:
        if self._episode is not None:
            self._episode.close()
            self._episode = None
        self._client.close()

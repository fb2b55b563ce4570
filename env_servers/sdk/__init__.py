"""The Python server SDK: write an `Environment`, get a conforming gymwire.v1 server.

What an author writes: `Environment` and `Episode` (environment.py), with `extract_action` for turns
in the `Action: ...` form (actions.py) and `hash_state` for `Episode.state_key` (state_keys.py). What
serves it: `gymwire serve NAME|module:Class` (server.py), or `BackgroundServer` (background.py) in a
thread of a test. The README's "Write your own environment" walks through one.
"""

from gymwire.env_servers.sdk.actions import action_line, extract_action
from gymwire.env_servers.sdk.environment import (
    EnvDescription,
    Environment,
    Episode,
    StepOutcome,
    Task,
    TaskCatalogue,
    UnknownTask,
)
from gymwire.env_servers.sdk.state_keys import hash_state

__all__ = [
    "EnvDescription",
    "Environment",
    "Episode",
    "StepOutcome",
    "Task",
    "TaskCatalogue",
    "UnknownTask",
    "action_line",
    "extract_action",
    "hash_state",
]

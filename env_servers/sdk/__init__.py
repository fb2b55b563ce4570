"""The Python server SDK: write an `Environment`, get a conforming gymwire.v1 server."""

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

__all__ = ["EnvDescription", "Environment", "Episode", "StepOutcome", "Task", "TaskCatalogue", "UnknownTask",
           "action_line", "extract_action"]

"""The trivial environment of the side-by-side protocol benchmark, as a gymwire environment.

Reset answers 200 characters; each step answers 1024 characters that echo the action; the episode
terminates at step 50. `bench/openenv_echo.py` is the same environment for OpenEnv, so both
servers do identical work and the benchmark measures the protocol and its stacks alone.
"""

from __future__ import annotations

from gymwire.env_servers.sdk import EnvDescription, Environment, Episode, StepOutcome, Task, TaskCatalogue

RESET_CHARS = 200
STEP_CHARS = 1024
EPISODE_STEPS = 50
TASK_ID = "echo-0"
FIRST_TEXT = ("The echo room. Every turn is repeated back to you. " * 5)[:RESET_CHARS]


def echo_text(action: str) -> str:
    """The step's observation: the action repeated to exactly STEP_CHARS characters."""
    unit = (action or "-") + " "
    return (unit * (STEP_CHARS // len(unit) + 1))[:STEP_CHARS]


class EchoEpisode(Episode):
    def __init__(self) -> None:
        self.steps = 0

    def reset(self) -> str:
        self.steps = 0
        return FIRST_TEXT

    def step(self, text: str) -> StepOutcome:
        self.steps += 1
        done = self.steps >= EPISODE_STEPS
        return StepOutcome(echo_text(text), reward=0.0, terminated=done, parsed_action=text[:32])


class EchoEnvironment(Environment):
    def describe(self) -> EnvDescription:
        return EnvDescription(
            name="echo",
            version="1.0.0",
            description="Echoes each turn back; ends after 50 steps. For protocol benchmarks.",
            instruction="Say anything.",
            action_grammar="any text",
            default_max_turns=EPISODE_STEPS,
            max_turns_limit=EPISODE_STEPS,
        )

    def catalogue(self) -> TaskCatalogue:
        return TaskCatalogue([Task(TASK_ID, "train", "easy")])

    def start(self, task: Task) -> EchoEpisode:
        return EchoEpisode()

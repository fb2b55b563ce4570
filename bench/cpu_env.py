"""A CPU-bound environment for the scaling benchmark: every step burns a fixed amount of pure Python."""

from __future__ import annotations

from gymwire.env_servers.sdk import EnvDescription, Environment, Episode, StepOutcome, Task, TaskCatalogue


class BurnEpisode(Episode):
    def __init__(self, work: int):
        self.work = work

    def reset(self) -> str:
        return "Say anything; each step costs the server a fixed amount of CPU."

    def step(self, text: str) -> StepOutcome:
        total = 0
        for i in range(self.work):  # holds the GIL, as most environments' game logic does
            total += i * i % 7
        return StepOutcome(f"burned {total % 97}", parsed_action=text[:20])


class BurnEnvironment(Environment):
    def __init__(self, work: int = 20_000):
        self.work = int(work)

    def describe(self) -> EnvDescription:
        return EnvDescription(
            name="burn",
            version="1.0.0",
            description="CPU-bound benchmark environment",
            instruction="Say anything.",
            action_grammar="any text",
            default_max_turns=1000,
            max_turns_limit=1000,
        )

    def catalogue(self) -> TaskCatalogue:
        return TaskCatalogue([Task(f"burn-{i}", "train", "easy") for i in range(8)])

    def start(self, task: Task) -> BurnEpisode:
        return BurnEpisode(self.work)

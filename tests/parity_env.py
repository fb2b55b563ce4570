"""A one-turn environment whose reward any text can earn: 1 when the reply has an even number of
words. A tiny model's samples split across both outcomes, so most GRPO groups have a spread and the
training steps move the weights; the trainer tests use it for that."""

from __future__ import annotations

from gymwire.env_servers.sdk import EnvDescription, Environment, Episode, StepOutcome, Task, TaskCatalogue


class ParityEpisode(Episode):
    def __init__(self, task: Task):
        self.task = task

    def reset(self) -> str:
        return f"Task {self.task.id}: say anything."

    def step(self, text: str) -> StepOutcome:
        even = len(text.split()) % 2 == 0
        return StepOutcome("Done.", reward=float(even), terminated=True, success=even, parsed_action=text.strip())


class ParityEnvironment(Environment):
    def describe(self) -> EnvDescription:
        return EnvDescription(
            name="parity",
            version="1.0.0",
            description="Any reply ends the episode; an even number of words wins.",
            instruction="Reply with a few words.",
            action_grammar="any text",
            default_max_turns=1,
        )

    def catalogue(self) -> TaskCatalogue:
        return TaskCatalogue(
            Task(f"{split}-{i}", split, "easy", "words", {})
            for split, count in (("train", 50), ("test", 10))
            for i in range(count)
        )

    def start(self, task: Task) -> ParityEpisode:
        return ParityEpisode(task)

"""The reference environment: guess a secret number. A complete example of the SDK in ~60 lines.

Difficulty tiers change the range (easy 1-10, hard 1-100); the server answers "higher" or
"lower"; valid actions are the guesses still consistent with the answers; the expert bisects.
"""

from __future__ import annotations

import random
import re

from gymwire.env_servers.sdk import EnvDescription, Environment, Episode, StepOutcome, Task, TaskCatalogue

RANGES = {"easy": 10, "hard": 100}
TASKS_PER_TIER = {"train": 200, "test": 50}
_ACTION = re.compile(r"guess\s+(-?\d+)", re.IGNORECASE)


class GuessEpisode(Episode):
    def __init__(self, task: Task):
        self.high = RANGES[task.difficulty]
        self.secret = random.Random(task.id).randint(1, self.high)
        self.low_bound, self.high_bound = 1, self.high
        self.solved = False

    def reset(self) -> str:
        return f"I am thinking of a number between 1 and {self.high}."

    def step(self, text: str) -> StepOutcome:
        match = _ACTION.search(text)
        if match is None:
            return StepOutcome("Not understood. Answer with: guess <number>.", action_valid=False)
        digits = match.group(1)
        if len(digits) > 12:  # far out of any range, and int() refuses numbers of thousands of digits
            return StepOutcome(f"{digits[:12]}... is out of range 1-{self.high}.", action_valid=False)
        guess = int(digits)
        action = f"guess {guess}"
        if not 1 <= guess <= self.high:
            return StepOutcome(f"{guess} is out of range 1-{self.high}.", action_valid=False, parsed_action=action)
        if guess == self.secret:
            self.solved = True
            return StepOutcome("Correct!", reward=1.0, terminated=True, success=True, parsed_action=action)
        if guess < self.secret:
            self.low_bound = max(self.low_bound, guess + 1)
            return StepOutcome(f"{guess} is too low.", parsed_action=action)
        self.high_bound = min(self.high_bound, guess - 1)
        return StepOutcome(f"{guess} is too high.", parsed_action=action)

    def valid_actions(self) -> list[str]:
        return [f"guess {n}" for n in range(self.low_bound, self.high_bound + 1)]

    def expert_action(self) -> str:
        return f"guess {(self.low_bound + self.high_bound) // 2}"

    def state_key(self) -> str:
        # The bounds are the whole state: guesses that leave them as they were change nothing.
        return "solved" if self.solved else f"{self.low_bound}-{self.high_bound}"


class GuessEnvironment(Environment):
    def describe(self) -> EnvDescription:
        return EnvDescription(
            name="guess",
            version="1.0.0",
            description="Guess a secret number; the reply says higher or lower.",
            instruction="Find the secret number. Each turn, answer with one action: guess <number>.",
            action_grammar="guess <integer>",
            provides_valid_actions=True,
            provides_expert=True,
            default_max_turns=10,
            max_turns_limit=100,
        )

    def catalogue(self) -> TaskCatalogue:
        tasks = [
            Task(f"{split}-{tier}-{i}", split, tier, "number", {"range": str(high)})
            for split, count in TASKS_PER_TIER.items()
            for tier, high in RANGES.items()
            for i in range(count)
        ]
        return TaskCatalogue(tasks)

    def start(self, task: Task) -> GuessEpisode:
        return GuessEpisode(task)

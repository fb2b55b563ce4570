"""The reference game with faults an environment author can write by mistake, triggered by the action text.

`nan` / `inf`: a non-finite reward; `badinfo`: an info value a protobuf Struct cannot hold; `huge`: an
observation over the message-size limit; `slow <seconds>`: a step that takes that long. Anything else
plays the ordinary game. Used by the fault benchmark (bench/faults.py) and the reliability tests.
"""

from __future__ import annotations

import time

from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.reference.guess import GuessEpisode
from gymwire.env_servers.sdk import StepOutcome


class FaultyEpisode(GuessEpisode):
    def step(self, text: str) -> StepOutcome:
        if text in ("nan", "inf"):
            return StepOutcome("a reward no optimizer can use", reward=float(text))
        if text == "badinfo":
            return StepOutcome("an info value that is no JSON", info={"seen": {1, 2}})
        if text == "huge":
            return StepOutcome("x" * (5 * 1024 * 1024))
        if text.startswith("slow "):
            time.sleep(float(text.split()[1]))
            return StepOutcome("that took a while", action_valid=False)
        return super().step(text)


class FaultyEnvironment(GuessEnvironment):
    def start(self, task) -> FaultyEpisode:
        return FaultyEpisode(task)

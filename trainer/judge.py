"""An LLM judge over failed episodes, through any OpenAI-compatible chat endpoint (the paper's failure analysis).

One request per failed episode: the judge reads the episode (the task, each turn with what the
server parsed, whether it was valid, the reward, how it ended) and names one category from
`CATEGORIES`. Its reply is parsed strictly: the category's name alone (surrounding whitespace,
quotes, backticks and a final period aside), else `UNPARSEABLE`; a failed request is `NO_ANSWER`.
The judge complements the rule-based tags (trainer/failures.py), which the report keeps beside it.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gymwire.trainer.types import Trajectory

CATEGORIES: dict[str, str] = {
    "confirmation_bias": "committed an answer, purchase or final action without first checking that it was right",
    "invalid_action": "wrote actions the environment could not parse or did not allow",
    "repeated_action_loop": "repeated the same actions without making progress",
    "misread_task": "pursued something other than what the task asked for",
    "wrong_reasoning": "understood the task but drew a wrong conclusion or followed a wrong plan",
    "ran_out_of_turns": "was making progress but did not finish within the turn limit",
    "other": "none of the above",
}
UNPARSEABLE = "unparseable"
NO_ANSWER = "no answer"
TRANSCRIPT_CHARS = 6000  # the episode text sent, its end kept (small judges have small contexts)

SYSTEM = "You analyse why an agent failed a task in a text environment. You answer with one category name only."


@dataclass
class Judgement:
    category: str  # a key of CATEGORIES, UNPARSEABLE or NO_ANSWER
    answer: str  # the judge's reply as given (or the request's error)

    def as_dict(self) -> dict[str, str]:
        return {"category": self.category, "answer": self.answer}


def parse_category(answer: str) -> str:
    """The category the reply names, strictly: the bare name, else UNPARSEABLE."""
    text = answer.strip().rstrip(".").strip().strip("`'\"").strip().lower()
    return text if text in CATEGORIES else UNPARSEABLE


def transcript(trajectory: Trajectory) -> str:
    """The episode as the judge reads it: the task, then each turn with the server's record of it."""
    messages = trajectory.messages
    task = next((m["content"] for m in messages if m["role"] == "user"), "")
    replies = iter(m["content"] for m in messages if m["role"] == "assistant")
    turns = []
    for step in trajectory.steps:
        turns.append(
            f"Turn {step.turn + 1}. Agent wrote: {next(replies, '')!r}\n  the environment parsed "
            f"{step.parsed_action!r} (valid: {step.action_valid}, reward: {step.reward:g})"
        )
    end = "reached the turn limit" if trajectory.truncated else "ended" if trajectory.terminated else "was stopped"
    text = "\n".join(turns) + f"\nThe episode {end} without success (return {trajectory.reward:g})."
    return f"Task and first observation:\n{task[: TRANSCRIPT_CHARS // 3]}\n\nTurns:\n{text[-TRANSCRIPT_CHARS:]}"


def judge_messages(trajectory: Trajectory) -> list[dict[str, str]]:
    listing = "\n".join(f"- {name}: the agent {meaning}" for name, meaning in CATEGORIES.items())
    question = (
        f"{transcript(trajectory)}\n\nWhy did the agent fail? Categories:\n{listing}\n\n"
        "Answer with exactly one category name from the list and nothing else."
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


class Judge:
    """`Judge.from_spec("http://host:port/v1#model")`; without a model, the first the server lists."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        max_concurrency: int = 4,
        timeout_s: float = 300.0,
        max_tokens: int = 16,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._model = model
        self.timeout_s = timeout_s
        self.max_tokens = max_tokens
        self.max_concurrency = max_concurrency

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> Judge:
        url, _, model = spec.partition("#")
        return cls(url, model or None, **kwargs)

    def _request(self, path: str, body: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - user-given server URL
            return json.loads(resp.read())

    @property
    def model(self) -> str:
        if self._model is None:
            served = self._request("/models").get("data", [])
            if not served:
                raise RuntimeError(f"{self.base_url} serves no model")
            self._model = served[0]["id"]
        return self._model

    def judge(self, trajectory: Trajectory) -> Judgement:
        body = {
            "model": self.model,
            "messages": judge_messages(trajectory),
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
        }
        try:
            reply = self._request("/chat/completions", body)["choices"][0]["message"]["content"] or ""
        except (OSError, urllib.error.URLError, KeyError, IndexError, ValueError) as exc:
            return Judgement(NO_ANSWER, f"{type(exc).__name__}: {exc}")
        return Judgement(parse_category(reply), reply)

    def judge_all(self, trajectories: Sequence[Trajectory]) -> list[Judgement]:
        """One request per episode, `max_concurrency` at a time (the server batches them)."""
        self.model  # resolve once, before the requests run in threads  # noqa: B018

        async def run() -> list[Judgement]:
            gate = asyncio.Semaphore(self.max_concurrency)

            async def one(t: Trajectory) -> Judgement:
                async with gate:
                    return await asyncio.to_thread(self.judge, t)

            return list(await asyncio.gather(*(one(t) for t in trajectories)))

        return asyncio.run(run())

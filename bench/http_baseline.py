"""The HTTP/JSON baseline of bench/protocol.py: an AgentGym-style FastAPI server over the same env logic.

AgentGym's environment servers expose `/create`, `/reset` and `/step` taking and returning JSON, one
process per environment, sessions as integer ids in a dict. This module is that server, wrapped around
gymwire's reference `GuessEnvironment` with the same turn-limit rule as the gymwire SDK, so the
benchmark compares transports and servers, not game logic.

It is deliberately the *strongest* plain FastAPI variant rather than a copy of AgentGym's code:
`async def` endpoints (no thread-pool hop, which AgentGym's `def` endpoints pay), pydantic models on
both sides (FastAPI serialises typed returns in pydantic-core), uvicorn with uvloop and httptools.
A win of gymwire over this server is therefore a win over the best case of that design.

Run: `uvicorn bench.http_baseline:app --loop uvloop --http httptools --port 8000`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from gymwire.env_servers.reference import GuessEnvironment
from gymwire.env_servers.sdk import Episode, Task


class CreateResponse(BaseModel):
    id: int


class ResetBody(BaseModel):
    id: int
    task_id: str
    max_turns: int = 0


class StepBody(BaseModel):
    id: int
    action: str


class CloseBody(BaseModel):
    id: int


class Observation(BaseModel):
    """The same fields a gymwire Observation carries, so both servers ship equal information."""

    text: str
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    success: bool = False
    action_valid: bool = True
    parsed_action: str = ""
    turn: int = 0


class CloseResponse(BaseModel):
    was_open: bool


@dataclass
class _Slot:
    """One AgentGym-style env instance: created empty, then reset to a task any number of times."""

    episode: Episode | None = None
    max_turns: int = 0
    turn: int = 0
    done: bool = False


env = GuessEnvironment()
_description = env.describe()
_catalogue = env.catalogue()
_slots: dict[int, _Slot] = {}
_ids = itertools.count()
app = FastAPI(title="guess (HTTP/JSON baseline)")


def _slot(slot_id: int) -> _Slot:
    slot = _slots.get(slot_id)
    if slot is None:
        raise HTTPException(status_code=404, detail=f"unknown env id {slot_id}")
    return slot


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/create")
async def create() -> CreateResponse:
    slot_id = next(_ids)
    _slots[slot_id] = _Slot()
    return CreateResponse(id=slot_id)


@app.post("/reset")
async def reset(body: ResetBody) -> Observation:
    slot = _slot(body.id)
    try:
        task: Task = _catalogue.get(body.task_id)
    except KeyError:
        raise HTTPException(status_code=400, detail=f"unknown task {body.task_id!r}") from None
    max_turns = body.max_turns or _description.default_max_turns
    if max_turns > _description.max_turns_limit:
        raise HTTPException(status_code=400, detail=f"max_turns above {_description.max_turns_limit}")
    slot.episode = env.start(task)
    slot.max_turns, slot.turn, slot.done = max_turns, 0, False
    return Observation(text=slot.episode.reset())


@app.post("/step")
async def step(body: StepBody) -> Observation:
    slot = _slot(body.id)
    if slot.episode is None or slot.done:
        raise HTTPException(status_code=409, detail="episode not started or already ended; reset first")
    outcome = slot.episode.step(body.action)
    slot.turn += 1
    truncated = not outcome.terminated and slot.turn >= slot.max_turns
    slot.done = outcome.terminated or truncated
    return Observation(
        text=outcome.observation,
        reward=outcome.reward,
        terminated=outcome.terminated,
        truncated=truncated,
        success=outcome.success,
        action_valid=outcome.action_valid,
        parsed_action=outcome.parsed_action,
        turn=slot.turn,
    )


@app.post("/close")
async def close(body: CloseBody) -> CloseResponse:
    return CloseResponse(was_open=_slots.pop(body.id, None) is not None)

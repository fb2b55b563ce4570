"""Sessions: one running episode each, with an idle TTL and a capacity limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

from gymwire.env_servers.sdk.environment import Episode, Task
from gymwire.env_servers.sdk.errors import ServiceError, echo
from gymwire.v1 import environment_pb2 as pb


@dataclass
class Session:
    id: str
    task: Task
    episode: Episode
    max_turns: int
    include_valid_actions: bool
    turn: int = 0
    done: bool = False
    last_reply: pb.Observation | None = None  # the reply of step `turn - 1`, for idempotent retries
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SessionStore:
    """Holds sessions by id. Expired sessions are evicted lazily and by a periodic sweep."""

    def __init__(self, max_sessions: int, ttl_seconds: float, id_prefix: str = ""):
        self.max_sessions = max_sessions
        self.ttl_seconds = ttl_seconds
        self._id_prefix = id_prefix
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def new_id(self) -> str:
        return self._id_prefix + uuid.uuid4().hex

    def ensure_capacity(self) -> None:
        if len(self._sessions) >= self.max_sessions:
            self.expire()
        if len(self._sessions) >= self.max_sessions:
            raise ServiceError.resource_exhausted(
                f"server holds its maximum of {self.max_sessions} sessions; close finished sessions or retry later"
            )

    def add(self, session: Session) -> None:
        self.ensure_capacity()
        self._sessions[session.id] = session

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise ServiceError.not_found(self._unknown_message(session_id))
        now = time.monotonic()
        if self._expired(session, now):
            del self._sessions[session_id]
            raise ServiceError.not_found(f"session {echo(session_id)} expired after {self.ttl_seconds:g} s idle")
        session.last_used = now
        return session

    def remove(self, session_id: str) -> bool:
        return self._sessions.pop(session_id, None) is not None

    def expire(self) -> list[str]:
        now = time.monotonic()
        stale = [sid for sid, s in self._sessions.items() if self._expired(s, now)]
        for sid in stale:
            del self._sessions[sid]
        return stale

    def _expired(self, session: Session, now: float) -> bool:
        # A session whose step is running right now is in use, however long the step takes.
        return self.ttl_seconds > 0 and not session.lock.locked() and now - session.last_used > self.ttl_seconds

    def _unknown_message(self, session_id: str) -> str:
        if not session_id:
            return "session_id is empty; pass the id returned by Reset"
        owner = session_id.partition("-")[0]
        if self._id_prefix and owner.startswith("w") and session_id[: len(self._id_prefix)] != self._id_prefix:
            return (
                f"unknown session {echo(session_id)}: it belongs to worker {echo(owner[1:], 12)} but this "
                f"connection reached worker {self._id_prefix[1:-1]}; keep one channel per session or use the "
                "Session stream"
            )
        return f"unknown or closed session {echo(session_id)}"

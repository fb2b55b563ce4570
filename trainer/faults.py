"""Kill points, so tests can kill a real run at a chosen phase the way `kill -9` would.

`GYMWIRE_KILL_AT=NAME:N` sends SIGKILL to this process the N-th time it reaches point NAME (N
defaults to 1): no `finally`, no flush, no atexit, exactly what an operator's kill or an OOM kill
leaves behind. Unset, a kill point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_reached: Counter[str] = Counter()


def kill_point(name: str) -> None:
    spec = os.environ.get("GYMWIRE_KILL_AT")
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _reached[name] += 1
    if _reached[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)

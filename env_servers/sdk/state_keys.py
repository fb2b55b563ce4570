"""State keys: an episode's state as a short, deterministic string for `Observation.state_key`.

`hash_state` is what the bundled environments send: the SHA-1 hex digest (40 characters) of the
state's canonical JSON (sorted keys, no spaces, UTF-8), so equal states give equal keys in any
process, on any machine and in any language that writes the same JSON. The digest keeps keys short
whatever the state's size (a grid, a page of results); it is not a security measure.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _canonical(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_unordered
    )


def _unordered(value: Any) -> Any:
    # A set has no order of its own: sort its members by their canonical text so that equal sets agree.
    if isinstance(value, set | frozenset):
        return sorted((json.loads(_canonical(item)) for item in value), key=_canonical)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"a state key cannot hold {type(value).__name__}; give plain JSON values, sets or bytes")


def hash_state(state: Any) -> str:
    """The SHA-1 hex digest of `state`'s canonical JSON: dicts, lists, tuples (as lists), strings,
    numbers, booleans, None, sets (order ignored) and bytes (as hex)."""
    return hashlib.sha1(_canonical(state).encode(), usedforsecurity=False).hexdigest()

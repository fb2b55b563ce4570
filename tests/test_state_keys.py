"""`hash_state`: equal states give equal keys whatever the order they were written in; others differ."""

from __future__ import annotations

import hashlib

import pytest

from gymwire.env_servers.sdk import hash_state


def test_equal_states_in_any_order_give_one_key() -> None:
    a = hash_state({"seen": {3, 1, 2}, "at": "desk 1", "where": {"mug 1": None, "apple 1": "fridge 1"}})
    b = hash_state({"where": {"apple 1": "fridge 1", "mug 1": None}, "at": "desk 1", "seen": frozenset({2, 3, 1})})
    assert a == b and len(a) == 40
    assert hash_state({"grid": b"\x00\x01"}) == hash_state({"grid": "0001"})  # bytes as hex
    assert hash_state({"k": (1, 2)}) == hashlib.sha1(b'{"k":[1,2]}').hexdigest()  # canonical JSON, documented


def test_different_states_give_different_keys_and_odd_values_are_refused() -> None:
    assert hash_state({"seen": {1, 2}}) != hash_state({"seen": {1, 2, 3}})
    assert hash_state([1, 2]) != hash_state([2, 1])  # a list's order is part of the state
    with pytest.raises(TypeError, match="cannot hold object"):
        hash_state({"x": object()})
    with pytest.raises(ValueError):
        hash_state({"x": float("nan")})

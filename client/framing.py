"""How many operations or results share one Multiplex message, on either side of the stream."""

from __future__ import annotations

from typing import Any

# Bytes per message at most: far below gRPC's default 4 MiB receive limit, however many sessions a
# stream carries and however long their turns and observations are.
MESSAGE_BUDGET = 1 << 20


def chunks(items: list[Any], budget: int = MESSAGE_BUDGET) -> list[list[Any]]:
    """Consecutive runs of `items` (protobuf messages) of at most `budget` serialized bytes each; an
    item larger than the budget goes alone."""
    runs: list[list[Any]] = [[]]
    size = 0
    for item in items:
        n = item.ByteSize() + 8  # the field's tag and length
        if size + n > budget and runs[-1]:
            runs.append([])
            size = 0
        runs[-1].append(item)
        size += n
    return runs

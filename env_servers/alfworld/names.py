"""Entity names as ALFWorld shows them: `cabinet 3`, `sinkbasin 1`, `mug 2`.

ALFWorld's PDDL problems name entities by their AI2-THOR id, mangled for PDDL
(`Cabinet|+00.68|+00.50|-02.20` -> `Cabinet_bar__plus_00_dot_68_bar__plus_00_dot_50_bar__minus_02_dot_20`,
lower-cased by the planner), and its demangler turns each into `<class> <k>`: ids are sorted, and
within a class the numbers are handed out from the highest down, so the first id in sorted order gets
the highest number. A room listing that follows id order therefore reads `a cabinet 4, a cabinet 3,
..., a cabinet 1, a coffeemachine 1, ...`, as ALFWorld's does. Sink and bathtub basins keep their
`basin` (`sinkbasin 1`). We number our own generated ids by the same rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

_MANGLE = (("|", "_bar_"), ("+", "_plus_"), ("-", "_minus_"), (".", "_dot_"), (",", "_comma_"))


def mangle(thor_id: str) -> str:
    """The PDDL form of an AI2-THOR id, lower-cased as the planner stores it."""
    for char, word in _MANGLE:
        thor_id = thor_id.replace(char, word)
    return thor_id.lower()


def class_of(thor_id: str) -> str:
    """`Sink|x|y|z|SinkBasin` -> `SinkBasin`, `Cabinet|x|y|z` -> `Cabinet` (the basin is the receptacle)."""
    parts = thor_id.split("|")
    return parts[-1] if len(parts) > 4 and parts[-1].endswith("Basin") else parts[0]


def number_instances(thor_ids: Iterable[str]) -> dict[str, str]:
    """Map every id to its display name (`<class lower-cased> <k>`) by ALFWorld's numbering rule."""
    ordered = sorted(set(thor_ids), key=mangle)
    left = Counter(class_of(i).lower() for i in ordered)
    names = {}
    for thor_id in ordered:
        base = class_of(thor_id).lower()
        names[thor_id] = f"{base} {left[base]}"
        left[base] -= 1
    return names


def display_order(thor_ids: Iterable[str]) -> list[str]:
    """Ids in the order ALFWorld lists entities (sorted PDDL names)."""
    return sorted(thor_ids, key=mangle)

"""Old names of renamed classes: still importable for one release, with a DeprecationWarning.

A module keeps its old names by assigning `__getattr__ = renamed(__name__, {"Old": "New"}, globals())`
under `if not TYPE_CHECKING:`, so that the type checker does not see it: typed code must use the new
names, and a misspelt import from that module stays an error there.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any


def renamed(module: str, names: Mapping[str, str], namespace: Mapping[str, Any]) -> Callable[[str], Any]:
    """A module-level `__getattr__` answering each old name in `names` with its new name's object in `namespace`."""

    def __getattr__(name: str) -> Any:
        new = names.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is deprecated and will be removed in the next release; use {new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return namespace[new]

    return __getattr__

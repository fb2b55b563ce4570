"""Build an index once, keep it on disk, reload it in milliseconds.

A cache entry is a folder named by a hash of everything its contents depend on (`key`), under
`~/.cache/gymwire/searchqa/` by default (`$XDG_CACHE_HOME` is honoured). It is built in a private
temporary folder and renamed into place, so a half-built entry is never read and two processes
building the same entry at once both end up with one complete copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

DONE = "complete.json"


def default_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gymwire" / "searchqa"


def entry_name(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def cached(key: dict[str, Any], build: Callable[[Path], None], root: str | Path | None = None) -> Path:
    """The folder for `key`, calling `build(folder)` first when no complete entry exists."""
    root = Path(root) if root is not None else default_root()
    folder = root / entry_name(key)
    if (folder / DONE).exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    scratch = root / f".building-{folder.name}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        build(scratch)
        (scratch / DONE).write_text(json.dumps(key, sort_keys=True, indent=1), encoding="utf-8")
        if folder.exists() and not (folder / DONE).exists():
            shutil.rmtree(folder, ignore_errors=True)  # left by a crashed build of an older version
        try:
            os.rename(scratch, folder)
        except OSError:
            if not (folder / DONE).exists():  # the other builder won the race; otherwise a real error
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder

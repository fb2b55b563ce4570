"""Where passage text comes from, and how search results are shown to the agent.

`Documents` is what the retriever needs: a count, each document's `contents` (`"Title"` on the first
line, then the text, the FlashRAG/Search-R1 corpus convention) and its external id. Generated
corpora compute contents from the knowledge base on demand (nothing stored); a real corpus is
kept in a `TextStore`: one UTF-8 blob plus an offsets array, memory-mapped from the cache, so a
server holds only the pages it reads.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from gymwire.env_servers.searchqa.grammar import NO_MATCH


class Documents(Protocol):
    def __len__(self) -> int: ...

    def contents(self, doc: int) -> str: ...

    def doc_id(self, doc: int) -> str: ...


class TextStore:
    """Strings by row number from a blob + offsets pair of files (mmap)."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray):
        self._blob, self._offsets = blob, offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, row: int) -> str:
        if not 0 <= row < len(self):
            raise IndexError(row)
        return bytes(self._blob[self._offsets[row] : self._offsets[row + 1]]).decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        return (self[row] for row in range(len(self)))

    @staticmethod
    def write(strings: Iterable[str], folder: Path, name: str) -> None:
        """Stream `strings` to `<name>.bin` and `<name>.offsets.npy` in `folder`."""
        offsets, end = array("q", [0]), 0
        with open(folder / f"{name}.bin", "wb") as out:
            for s in strings:
                data = s.encode("utf-8")
                out.write(data)
                end += len(data)
                offsets.append(end)
        np.save(folder / f"{name}.offsets.npy", np.frombuffer(offsets, dtype=np.int64))

    @classmethod
    def open(cls, folder: Path, name: str) -> TextStore:
        offsets = np.load(folder / f"{name}.offsets.npy", mmap_mode="r")
        path = folder / f"{name}.bin"
        blob = np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0, dtype=np.uint8)
        return cls(blob, offsets)


class StoredDocuments:
    """A real corpus: contents and ids from two `TextStore`s."""

    def __init__(self, contents: TextStore, ids: TextStore):
        self._contents, self._ids = contents, ids

    def __len__(self) -> int:
        return len(self._contents)

    def contents(self, doc: int) -> str:
        return self._contents[doc]

    def doc_id(self, doc: int) -> str:
        return self._ids[doc]


def format_information(contents: Sequence[str]) -> str:
    """Search results exactly as Search-R1 shows them (its `_passages2string`, then stripped and wrapped):

    `<information>Doc 1(Title: "<title>") <text>\\nDoc 2(Title: ...) ...</information>`. The title is
    the first line of a document's contents (quotes included), the text the remaining lines. Search-R1
    also puts a blank line before and after the block because it appends the block to the model's own
    token stream; AgentGym's server, like this one, returns the block alone as the observation.
    A search that matches no document shows `NO_MATCH` inside the tags (BM25 can return nothing).
    """
    lines = []
    for number, content in enumerate(contents, start=1):
        title, _, text = content.partition("\n")
        lines.append(f"Doc {number}(Title: {title}) {text}")
    body = "\n".join(lines).strip() or NO_MATCH
    return f"<information>{body}</information>"

"""Streaming reader for files that hold one big JSON array or object (the full WebShop files are
gigabytes; `json.load` would need several times that in memory). Elements are decoded one at a time
with `json.JSONDecoder.raw_decode` over a growing 1 MiB window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


class _JsonStream:
    """Reads a top-level JSON array or object one element at a time (the full files are gigabytes)."""

    def __init__(self, path: Path):
        self.path = path
        self.file = open(path, encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.decoder = json.JSONDecoder()
        self.buf, self.pos, self.eof = "", 0, False

    def close(self) -> None:
        self.file.close()

    def _fill(self) -> None:
        chunk = self.file.read(1 << 20)
        self.eof = not chunk
        self.buf, self.pos = self.buf[self.pos :] + chunk, 0

    def peek(self) -> str:
        """The next non-space character ("" at the end of the file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos].isspace():
                self.pos += 1
            if self.pos < len(self.buf) or self.eof:
                return self.buf[self.pos] if self.pos < len(self.buf) else ""
            self._fill()

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"{self.path}: expected {char!r} at character {self.pos}")
        self.pos += 1

    def value(self):
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:  # a value at the buffer's end may continue
                    self.pos = end
                    return value
            except json.JSONDecodeError:
                if self.eof:
                    raise
            self._fill()


def _elements(path: Path, opening: str, closing: str, pairs: bool) -> Iterator:
    stream = _JsonStream(path)
    try:
        stream.expect(opening)
        if stream.peek() == closing:
            return
        while True:
            if pairs:
                key = stream.value()
                stream.expect(":")
                yield key, stream.value()
            else:
                yield stream.value()
            if stream.peek() == ",":
                stream.pos += 1
                continue
            stream.expect(closing)
            return
    finally:
        stream.close()


def iter_json_array(path: Path) -> Iterator:
    """The items of a file holding one JSON array, parsed one at a time."""
    return _elements(path, "[", "]", pairs=False)


def iter_json_object(path: Path) -> Iterator[tuple[str, object]]:
    """The (key, value) pairs of a file holding one JSON object, parsed one at a time."""
    return _elements(path, "{", "}", pairs=True)

"""Real data in FlashRAG's formats, read from paths the user gives (nothing is downloaded).

QA file (jsonl), one question per line: `{"id": ..., "question": "...", "golden_answers": ["...", ...]}`;
`id` is optional (the 0-based line number among non-blank lines is used instead) and `golden_answers`
may be a single string. Other fields are kept; a difficulty and a category can be read from any of
them by a dotted path (`metadata.level`).

Corpus file (jsonl), one passage per line: `{"id": "...", "contents": "\\"Title\\"\\ntext"}` (the
first line of `contents` is the title, quotes included, as in FlashRAG's wiki-18 dump). `id` is
optional here too. The corpus is read once into the cache (text store + BM25 index).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class QaItem:
    id: str
    question: str
    answers: tuple[str, ...]
    fields: dict[str, Any] = field(default_factory=dict, compare=False)

    def lookup(self, path: str | None) -> str | None:
        """A field by dotted path (`metadata.level`), as text; None when absent or empty."""
        if not path:
            return None
        value: Any = self.fields
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        if value is None or value == "" or isinstance(value, dict | list):
            return None
        return str(value)


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            yield number, record


def read_qa(path: str | Path) -> list[QaItem]:
    path = Path(path)
    items: list[QaItem] = []
    seen: set[str] = set()
    for row, (number, record) in enumerate(_json_lines(path)):
        question = record.get("question")
        answers = record.get("golden_answers", record.get("answers"))
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"{path}:{number}: missing 'question'")
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str | int | float) for a in answers):
            raise ValueError(f"{path}:{number}: 'golden_answers' must be a non-empty list of strings")
        item_id = str(record["id"]) if record.get("id") not in (None, "") else str(row)
        if item_id in seen:
            raise ValueError(f"{path}:{number}: duplicate id {item_id!r}")
        seen.add(item_id)
        items.append(QaItem(item_id, question.strip(), tuple(str(a) for a in answers), record))
    if not items:
        raise ValueError(f"{path}: no questions")
    return items


def read_corpus(path: str | Path) -> Iterator[tuple[str, str]]:
    """(id, contents) per passage, in file order."""
    path = Path(path)
    for row, (number, record) in enumerate(_json_lines(path)):
        contents = record.get("contents")
        if not isinstance(contents, str):
            title, text = record.get("title"), record.get("text")
            if not isinstance(text, str):
                raise ValueError(f"{path}:{number}: missing 'contents' (or 'title' and 'text')")
            contents = f'"{title}"\n{text}' if title else text
        passage_id = str(record["id"]) if record.get("id") not in (None, "") else str(row)
        yield passage_id, contents


def file_fingerprint(path: str | Path) -> dict[str, Any]:
    """What a cache key needs to notice a changed file without reading it: path, size, mtime."""
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

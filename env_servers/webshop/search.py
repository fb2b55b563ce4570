"""BM25 search over a catalogue with tantivy: built once into a folder, then opened by mmap.

Each product is one document, its text chosen by the catalogue (generated: title, attributes,
description, features; original data: the original's title, description, first feature and option
text), analysed like the original's Lucene setup (lower case, English stop words, Porter-style
stemming), plus its position as a fast field. A search returns at most 50 positions, best first;
equal scores are ordered by position, so every process that opens the same index (or builds it
from the same catalogue) gets the same list.

Queries are reduced to their alphanumeric words before parsing, so no agent text can reach
tantivy's query syntax (quotes, `field:`, `AND`, ranges).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import tantivy

SEARCH_RETURN_N = 50
ANALYZER = "webshop_en"
_WORDS = re.compile(r"[a-z0-9]+")
_HEAP_BYTES = 256 * 1024 * 1024


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("contents", stored=False, tokenizer_name=ANALYZER, index_option="freq")
    builder.add_unsigned_field("pos", stored=False, indexed=False, fast=True)
    return builder.build()


def _analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stopword("english"))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


def build_index(folder: Path, texts: Iterable[tuple[int, str]]) -> int:
    """Index `(position, text)` pairs into `folder` (which must be empty); returns the count.

    One writer thread keeps document order equal to insertion order; rendering the texts in Python
    and indexing in tantivy's thread still overlap.
    """
    folder.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(_schema(), path=str(folder), reuse=False)
    index.register_tokenizer(ANALYZER, _analyzer())
    writer = index.writer(_HEAP_BYTES, 1)
    count = 0
    for pos, text in texts:
        doc = tantivy.Document()
        doc.add_text("contents", text)
        doc.add_unsigned("pos", pos)
        writer.add_document(doc)
        count += 1
    writer.commit()
    writer.wait_merging_threads()
    return count


def query_words(keywords: str) -> str:
    return " ".join(_WORDS.findall(keywords.lower()))


class SearchIndex:
    """An opened index; `search` is thread-safe (tantivy searchers are)."""

    def __init__(self, folder: Path):
        self.index = tantivy.Index.open(str(folder))
        self.index.register_tokenizer(ANALYZER, _analyzer())
        self.searcher = self.index.searcher()

    def __len__(self) -> int:
        return self.searcher.num_docs

    def search(self, keywords: str, limit: int = SEARCH_RETURN_N) -> list[int]:
        words = query_words(keywords)
        if not words:
            return []
        query = self.index.parse_query(words, ["contents"])
        # Fetch past the cut (up to 4x) until the score at the cut is above the last fetched one, so
        # documents tied at the cut are all seen and ordered by position, not by how tantivy laid
        # out its segments (which can differ between two builds of one catalogue). Only a query
        # that ties more than ~250 documents at the cut (one very common word) can still differ
        # between two separate builds; one built index always answers the same.
        fetch = limit + 20
        while True:
            hits = self.searcher.search(query, fetch, count=False).hits
            scores = [round(score, 4) for score, _ in hits]
            if len(hits) < fetch or len(hits) <= limit or scores[limit - 1] > scores[-1] or fetch > 2 * limit:
                break
            fetch *= 4
        if not hits:
            return []
        positions: list[int] = []
        for value in self.searcher.fast_field_values("pos", [address for _, address in hits]):
            assert isinstance(value, int)  # "pos" is an unsigned fast field that every document has
            positions.append(value)
        ranked = sorted(zip(scores, positions, strict=True), key=lambda h: (-h[0], h[1]))
        return [pos for _, pos in ranked[:limit]]

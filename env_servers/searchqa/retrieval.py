"""The search engine an episode talks to: BM25 over a corpus, built once and cached on disk.

`Retriever.for_generated` indexes a knowledge base's passages (text computed on demand, so only the
index is cached); `Retriever.for_corpus` copies a FlashRAG corpus file into a memory-mapped text
store beside its index. Cache keys hold everything the contents depend on; the generated key also
holds a fingerprint of sample passages, so editing the passage templates cannot serve a stale index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from gymwire.env_servers.searchqa.bm25 import FORMAT, Bm25Index, Hit
from gymwire.env_servers.searchqa.cache import cached
from gymwire.env_servers.searchqa.knowledge import KnowledgeBase
from gymwire.env_servers.searchqa.passages import contents as kb_contents
from gymwire.env_servers.searchqa.real import file_fingerprint, read_corpus
from gymwire.env_servers.searchqa.store import Documents, StoredDocuments, TextStore, format_information


class GeneratedDocuments:
    """A knowledge base's passages, one per entity, computed when asked for."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb

    def __len__(self) -> int:
        return self.kb.size

    def contents(self, doc: int) -> str:
        return kb_contents(self.kb, doc)

    def doc_id(self, doc: int) -> str:
        return str(doc)

    def fingerprint(self) -> str:
        sample = range(0, len(self), max(1, len(self) // 50))
        digest = hashlib.sha256()
        for doc in sample:
            digest.update(self.contents(doc).encode())
        return digest.hexdigest()[:16]

    def all_contents(self) -> Iterator[str]:
        seen: set[str] = set()
        for doc in range(len(self)):
            name = self.kb.name(doc)
            if name in seen:  # names are unique by construction; a clash would make questions ambiguous
                raise RuntimeError(f"two entities are both named {name!r}")
            seen.add(name)
            yield self.contents(doc)


class Retriever:
    def __init__(self, index: Bm25Index, documents: Documents, top_k: int = 3):
        if index.n_docs != len(documents):
            raise ValueError(f"index has {index.n_docs} documents, corpus {len(documents)}")
        self.index, self.documents, self.top_k = index, documents, top_k

    @classmethod
    def for_generated(
        cls, kb: KnowledgeBase, *, top_k: int = 3, cache_root: str | Path | None = None, k1: float = 0.9, b: float = 0.4
    ) -> Retriever:
        documents = GeneratedDocuments(kb)
        key = {
            "kind": "generated",
            "seed": kb.seed,
            "passages": kb.size,
            "sample": documents.fingerprint(),
            "index": FORMAT,
            "k1": k1,
            "b": b,
        }

        def build(folder: Path) -> None:
            Bm25Index.build(documents.all_contents(), k1=k1, b=b).save(folder)

        return cls(Bm25Index.load(cached(key, build, cache_root)), documents, top_k)

    @classmethod
    def for_corpus(
        cls,
        corpus_path: str | Path,
        *,
        top_k: int = 3,
        cache_root: str | Path | None = None,
        k1: float = 0.9,
        b: float = 0.4,
    ) -> Retriever:
        key = {"kind": "corpus", "file": file_fingerprint(corpus_path), "index": FORMAT, "k1": k1, "b": b}

        def build(folder: Path) -> None:
            TextStore.write((contents for _, contents in read_corpus(corpus_path)), folder, "contents")
            TextStore.write((pid for pid, _ in read_corpus(corpus_path)), folder, "ids")
            Bm25Index.build(TextStore.open(folder, "contents"), k1=k1, b=b).save(folder)

        folder = cached(key, build, cache_root)
        documents = StoredDocuments(TextStore.open(folder, "contents"), TextStore.open(folder, "ids"))
        return cls(Bm25Index.load(folder), documents, top_k)

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        return self.index.search(query, k or self.top_k)

    def retrieves(self, query: str, doc: int) -> bool:
        return any(hit.doc == doc for hit in self.search(query))

    def show(self, hits: list[Hit]) -> str:
        return format_information([self.documents.contents(hit.doc) for hit in hits])

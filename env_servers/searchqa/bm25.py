"""A compact BM25 index over numpy arrays: built in one streaming pass, saved as .npy, memory-mapped.

Why not bm25s: its indexer holds the whole corpus as Python lists of token lists (several GiB at a
million passages); this builder keeps only flat int32 arrays per chunk and places postings with a
counting sort, so it needs numpy alone. Scores follow Lucene's BM25 (what Pyserini, Search-R1's
BM25 retriever, computes): idf = ln(1 + (N - df + 0.5) / (df + 0.5)) and
tf / (tf + k1 * (1 - b + b * dl / avgdl)), with Pyserini's defaults k1 = 0.9, b = 0.4; Lucene's
lossy length encoding is not reproduced, so scores differ from Pyserini's in the last digits.

Layout: a term-major (CSC) matrix of precomputed weights: `indptr[t]:indptr[t+1]` slices `docs`
(int32, ascending) and `weights` (float32) for term t. A query sums the slices of its terms, so its
cost is the length of those posting lists, never the corpus size (below a threshold).
"""

from __future__ import annotations

import json
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

FORMAT = "gymwire-bm25/1"
_WORD = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(
    "a an and are as at be been but by for from had has have he her his i in into is it its of on or she "
    "that the their them there these they this those to was were what when where which who whom whose why "
    "will with you your than then so not no do does did can could would should may might also".split()
)
MAX_QUERY_TERMS = 64  # distinct terms; bounds the work a long query can cause
_BLOCK = 1 << 22  # postings weighted per step while building
_FEW = 16  # up to this k, top-k by repeated argmax


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits), stopwords removed."""
    return [t for t in _WORD.findall(text.lower()) if t not in STOPWORDS]


@dataclass(frozen=True)
class Hit:
    doc: int  # row in the corpus the index was built from
    score: float


class Bm25Index:
    def __init__(
        self,
        vocab: dict[str, int],
        indptr: np.ndarray,
        docs: np.ndarray,
        weights: np.ndarray,
        n_docs: int,
        k1: float,
        b: float,
    ):
        self.vocab, self.indptr, self.docs, self.weights = vocab, indptr, docs, weights
        self.n_docs, self.k1, self.b = n_docs, k1, b

    # --- building ----------------------------------------------------------------------------

    @classmethod
    def build(cls, texts: Iterable[str], *, k1: float = 0.9, b: float = 0.4, chunk_docs: int = 20_000) -> Bm25Index:
        vocab: defaultdict[str, int] = defaultdict(lambda: len(vocab))
        lengths = array("i")
        chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        ids, chunk_lengths = array("i"), array("i")
        for text in texts:
            tokens = tokenize(text)
            ids.extend(map(vocab.__getitem__, tokens))
            chunk_lengths.append(len(tokens))
            if len(chunk_lengths) == chunk_docs:
                chunks.append(_chunk_postings(ids, chunk_lengths, len(lengths)))
                lengths.extend(chunk_lengths)
                ids, chunk_lengths = array("i"), array("i")
        if chunk_lengths:
            chunks.append(_chunk_postings(ids, chunk_lengths, len(lengths)))
            lengths.extend(chunk_lengths)
        n_docs, n_terms = len(lengths), len(vocab)
        if n_docs == 0:
            raise ValueError("cannot index an empty corpus")
        df = np.zeros(n_terms, dtype=np.int64)
        for terms, _, _ in chunks:
            df += np.bincount(terms, minlength=n_terms)
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(df, out=indptr[1:])
        docs = np.empty(int(indptr[-1]), dtype=np.int32)
        tfs = np.empty(int(indptr[-1]), dtype=np.float32)
        cursor = indptr[:-1].copy()
        while chunks:  # counting sort by term; chunk order keeps each posting list in doc order
            terms, chunk_docs_, tf = chunks.pop(0)
            rank = np.arange(len(terms)) - np.searchsorted(terms, terms)
            where = cursor[terms] + rank
            docs[where], tfs[where] = chunk_docs_, tf
            cursor += np.bincount(terms, minlength=n_terms)
        dl = np.frombuffer(lengths, dtype=np.int32).astype(np.float32)
        avgdl = max(float(dl.mean()), 1e-9)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = (k1 * (1 - b + b * dl / avgdl)).astype(np.float32)
        weights = tfs  # overwritten block by block: tf becomes the weight, no second big array
        for start in range(0, len(weights), _BLOCK):
            end = min(start + _BLOCK, len(weights))
            term_of = np.searchsorted(indptr, np.arange(start, end), side="right") - 1
            tf = weights[start:end]
            weights[start:end] = idf[term_of] * tf / (tf + norm[docs[start:end]])
        return cls(dict(vocab), indptr, docs, weights, n_docs, k1, b)

    # --- persistence -------------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "indptr.npy", self.indptr)
        np.save(folder / "docs.npy", self.docs)
        np.save(folder / "weights.npy", self.weights)
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        (folder / "vocab.txt").write_text("\n".join(terms), encoding="utf-8")
        meta = {"format": FORMAT, "n_docs": self.n_docs, "n_terms": len(terms), "k1": self.k1, "b": self.b}
        (folder / "bm25.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> Bm25Index:
        meta = json.loads((folder / "bm25.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{folder} holds index format {meta.get('format')!r}, not {FORMAT!r}")
        mode: Literal["r"] | None = "r" if mmap else None
        text = (folder / "vocab.txt").read_text(encoding="utf-8")
        terms = text.split("\n") if text else []
        if len(terms) != meta["n_terms"]:
            raise ValueError(f"{folder}: vocabulary has {len(terms)} terms, expected {meta['n_terms']}")
        return cls(
            {t: i for i, t in enumerate(terms)},
            np.load(folder / "indptr.npy", mmap_mode=mode),
            np.load(folder / "docs.npy", mmap_mode=mode),
            np.load(folder / "weights.npy", mmap_mode=mode),
            meta["n_docs"],
            meta["k1"],
            meta["b"],
        )

    # --- search ------------------------------------------------------------------------------

    def search(self, query: str, k: int) -> list[Hit]:
        """The k best documents with a positive score, best first; ties go to the lower doc id."""
        counts = Counter(self.vocab[t] for t in tokenize(query) if t in self.vocab)
        terms = list(counts.items())[:MAX_QUERY_TERMS]
        if not terms or k <= 0:
            return []
        doc_parts, weight_parts = [], []
        for term, times in terms:
            start, end = int(self.indptr[term]), int(self.indptr[term + 1])
            doc_parts.append(self.docs[start:end])
            weight_parts.append(self.weights[start:end] * np.float32(times))
        all_docs = np.concatenate(doc_parts)
        all_weights = np.concatenate(weight_parts).astype(np.float64)
        if len(all_docs) * 8 < self.n_docs:  # few postings: aggregate them without touching every document
            candidates, inverse = np.unique(all_docs, return_inverse=True)
            scores = np.bincount(inverse, weights=all_weights)
        else:
            scores = np.bincount(all_docs, weights=all_weights, minlength=self.n_docs)
            candidates = None
        doc_of = (lambda i: int(candidates[i])) if candidates is not None else int
        if k <= _FEW:  # a few argmax passes beat a partition; argmax takes the lowest index on ties
            hits = []
            for _ in range(min(k, len(scores))):
                best = int(scores.argmax())
                if scores[best] <= 0:
                    break
                hits.append(Hit(doc_of(best), float(scores[best])))
                scores[best] = -np.inf
            return hits
        if len(scores) > k:
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = np.flatnonzero(scores >= kth)
        else:
            keep = np.arange(len(scores))
        kept = scores[keep]
        order = np.lexsort((keep, -kept))[:k]  # candidates are sorted, so row order is doc order
        return [Hit(doc_of(int(keep[i])), float(kept[i])) for i in order if kept[i] > 0]


def _chunk_postings(ids: array, lengths: array, first_doc: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(term, doc, tf) triples of one chunk, sorted by term then doc."""
    terms = np.frombuffer(ids, dtype=np.int32).astype(np.int64)
    n = len(lengths)
    local = np.repeat(np.arange(n, dtype=np.int64), np.frombuffer(lengths, dtype=np.int32))
    keys, tf = np.unique(terms * n + local, return_counts=True)
    return (
        (keys // n).astype(np.int32),
        (keys % n + first_doc).astype(np.int32),
        np.minimum(tf, 65535).astype(np.uint16),
    )

"""Catalogues on disk: built once into a cache folder, then opened lazily by every later start.

A folder is complete when its `meta.json` exists. It is built under a temporary name beside its
final one and renamed into place, so a crash leaves no half-built catalogue behind and two servers
starting at once build twice but never corrupt each other (the second rename loses and is dropped).

The generated catalogue's folder holds `rows.npy` (the fixed-size rows, memory-mapped on open) and
`index/` (tantivy); nothing is parsed at start-up, which is what makes a 1M-product server ready
in about a second.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from gymwire.env_servers.webshop.generator import ROW, CatalogueSpec, index_of_asin, iter_chunks
from gymwire.env_servers.webshop.goals import Goal, generated_goal
from gymwire.env_servers.webshop.product import Product
from gymwire.env_servers.webshop.render import render
from gymwire.env_servers.webshop.search import SearchIndex, build_index

META = "meta.json"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gymwire" / "webshop"


def build_once(folder: Path, build: Callable[[Path], dict]) -> dict:
    """Return the folder's metadata, building it first (atomically) when it is missing."""
    meta_path = folder / META
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        scratch.mkdir()
        started = time.perf_counter()
        meta = build(scratch)
        meta["build_seconds"] = round(time.perf_counter() - started, 3)
        (scratch / META).write_text(json.dumps(meta, indent=1))
        try:
            scratch.rename(folder)
        except OSError:  # someone else finished first (or a stale, incomplete folder is in the way)
            if not meta_path.exists():
                shutil.rmtree(folder, ignore_errors=True)
                scratch.rename(folder)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return json.loads(meta_path.read_text())


def _build_generated(spec: CatalogueSpec, folder: Path) -> dict:
    rows_path = folder / "rows.npy"
    out = np.lib.format.open_memmap(rows_path, mode="w+", dtype=ROW, shape=(spec.products,))
    start = 0
    for chunk in iter_chunks(spec):
        out[start : start + len(chunk)] = chunk
        start += len(chunk)
    out.flush()
    generated = time.perf_counter()

    def texts(rows: np.ndarray) -> Iterator[tuple[int, str]]:
        for i in range(spec.products):
            yield i, render(rows[i], i, spec.seed).index_text()

    count = build_index(folder / "index", texts(out))
    del out  # release the mapping before the folder is renamed
    return {
        "kind": "generated",
        "products": spec.products,
        "seed": spec.seed,
        "distractors": spec.distractors,
        "indexed": count,
        "index_seconds": round(time.perf_counter() - generated, 3),
    }


class GeneratedCatalogue:
    """A generated catalogue opened from its cache folder: rows by mmap, search by tantivy."""

    def __init__(self, spec: CatalogueSpec, cache_dir: str | Path | None = None):
        self.spec = spec
        self.folder = Path(cache_dir or default_cache_dir()) / spec.fingerprint()
        self.meta = build_once(self.folder, lambda scratch: _build_generated(spec, scratch))
        self.rows = np.load(self.folder / "rows.npy", mmap_mode="r")
        if self.rows.dtype != ROW or len(self.rows) != spec.products:
            raise RuntimeError(f"{self.folder} does not hold this catalogue; delete it to rebuild")
        self.search_index = SearchIndex(self.folder / "index")

    def __len__(self) -> int:
        return self.spec.products

    def product(self, index: int) -> Product:
        return render(self.rows[index], index, self.spec.seed)

    def index_of(self, asin: str) -> int | None:
        index = index_of_asin(asin, self.spec.seed)
        return index if index is not None and index < self.spec.products else None

    def search(self, keywords: str) -> list[int]:
        return self.search_index.search(keywords)

    def goal(self, index: int, variant: int) -> Goal:
        return generated_goal(self.rows[index], index, self.spec.seed, variant, self.product(index).title)

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())

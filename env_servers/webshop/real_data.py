"""The original WebShop data, loaded from a user's files, with AgentGym's goal numbering.

Files (the original's names; any of them can be given one by one):
- products: `items_shuffle_1000.json` or `items_shuffle.json`, a JSON array of scraped products
  (asin, name, full_description, small_description, pricing "$a" or "$a to $b", customization_options
  {name: [{value, image}]}, query, category, product_category, ...).
- attributes: `items_ins_v2_1000.json` or `items_ins_v2.json`, {asin: {attributes, instruction,
  instruction_attributes}}.
- human instructions: `items_human_ins.json`, {asin: [{instruction, instruction_attributes,
  instruction_options, ...}]}.
- reviews (optional): `reviews.json`, [{asin, reviews, average_rating}].

Products are cleaned as the original's `load_products` does (skip ASINs that are "nan" or longer
than 10 characters and repeats; option names and values lower-cased, "/" shown as " | "; missing
pricing is $100.0; attributes default to ["DUMMY_ATTR"]). The build streams the files (the full
ones are gigabytes) into one SQLite file plus a tantivy index in the cache folder; later starts
open them without parsing anything.

Goals, numbered like AgentGym's sessions:
- synthetic (`synthetic-<i>`): for each product with an instruction, in file order, one goal per
  combination of its option values (option names sorted), the price cap drawn with AgentGym's
  `random.seed(233)` before the first product, then the list shuffled after `random.seed(233)`.
- human (`human-<i>`): one goal per human instruction with attributes, in file order, cap drawn the
  same way (the original drew it unseeded: not reproducible), shuffled with seed 233; test 0-499,
  dev 500-1499, train 1500+. `human_rule="agentgym"` makes AgentGym's four goals per instruction
  instead (caps at each of the first four tiers above the price).
Prices of ranged products are drawn uniformly in the range, seeded by the ASIN (the original used
the unseeded global generator). Search indexes the original's document text (title, description,
first feature, option text) but ranks with tantivy's BM25 (k1 1.2, b 0.75) where the original used
Pyserini's defaults (k1 0.9, b 0.4), so result orders can differ from the original's.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from gymwire.env_servers.webshop.goals import NO_CAP, PRICE_TIERS, Goal, price_text
from gymwire.env_servers.webshop.jsonstream import iter_json_array, iter_json_object
from gymwire.env_servers.webshop.product import Product, Review
from gymwire.env_servers.webshop.search import SearchIndex, build_index
from gymwire.env_servers.webshop.store import build_once, default_cache_dir

LOADER_VERSION = 1
GOAL_SEED = 233
HUMAN_SPLITS = ((0, 500, "test"), (500, 1500, "dev"), (1500, None, "train"))
_FILES = {
    "products": ("items_shuffle_1000.json", "items_shuffle.json"),
    "attributes": ("items_ins_v2_1000.json", "items_ins_v2.json"),
    "human": ("items_human_ins.json",),
    "reviews": ("reviews.json",),
}


# --- cleaning ------------------------------------------------------------------------------------


def _parse_pricing(pricing) -> tuple[list[float], str]:
    if not pricing:
        return [100.0], "$100.0"
    values = []
    for part in str(pricing).split("$")[1:]:
        try:
            values.append(float(Decimal(re.sub(r"[^\d.]", "", part))))
        except InvalidOperation:
            continue
    if not values:
        return [100.0], "$100.0"
    if len(values) == 1:
        return values, f"${values[0]}"
    return values[:2], f"${values[0]} to ${values[1]}"


def _price(asin: str, pricing: list[float]) -> float:
    if len(pricing) == 1:
        return pricing[0]
    return random.Random(f"webshop-price:{asin}").uniform(*pricing[:2])


def clean_product(raw: dict, attributes: dict | None, human: list | None, review: dict | None) -> dict:
    """The fields the pages, the reward and the goals use, from one raw product (load_products)."""
    asin = raw["asin"]
    pricing, price_tag = _parse_pricing(raw.get("pricing"))
    options: dict[str, list[str]] = {}
    for name, contents in (raw.get("customization_options") or {}).items():
        if contents is None:
            continue
        options[name.lower()] = [c["value"].strip().replace("/", " | ").lower() for c in contents]
    bullets = raw.get("small_description")
    bullets = bullets if isinstance(bullets, list) else [bullets or ""]
    reviews = []
    for r in (review or {}).get("reviews", []) or []:
        reviews.append([str(r.get("title", "")), str(r.get("score", r.get("stars", ""))), str(r.get("review", ""))])
    attrs = (attributes or {}).get("attributes") if attributes else None
    return {
        "asin": asin,
        "title": raw.get("name") or "",
        "description": raw.get("full_description") or "",
        "bullets": [str(b) for b in bullets],
        "pricing": pricing,
        "price_tag": price_tag,
        "price": _price(asin, pricing),
        "options": options,
        "attributes": list(attrs) if attrs is not None else ["DUMMY_ATTR"],
        "query": (raw.get("query") or "").lower().strip(),
        "category": raw.get("category") or "",
        "product_category": raw.get("product_category") or "",
        "rating": str((review or {}).get("average_rating", "N.A.")) if review else "N.A.",
        "reviews": reviews,
        "instruction": (attributes or {}).get("instruction"),
        "instruction_attributes": (attributes or {}).get("instruction_attributes"),
        "human": [h for h in (human or []) if isinstance(h, dict)],
    }


def _to_product(d: dict) -> Product:
    return Product(
        asin=d["asin"],
        title=d["title"],
        price=d["price"],
        price_tag=d["price_tag"],
        options={k: tuple(v) for k, v in d["options"].items()},
        attributes=tuple(d["attributes"]),
        bullets=tuple(d["bullets"]),
        description=d["description"],
        query=d["query"],
        category=d["category"],
        product_category=d["product_category"],
        rating=d["rating"],
        reviews=tuple(Review(*r) for r in d["reviews"]),
    )


def original_index_text(d: dict) -> str:
    """The original's search document: title, description, first bullet, option text."""
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in d["options"].items())
    first_bullet = d["bullets"][0] if d["bullets"] else ""
    return " ".join((d["title"], d["description"], first_bullet, option_text)).lower()


def _tiers_above(price: float) -> list[float]:
    return [p for p in PRICE_TIERS if p > price][:4]


# --- building ------------------------------------------------------------------------------------


def _find(data: Path | None, kind: str, given: str | Path | None) -> Path | None:
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"WebShop {kind} file not found: {path}")
        return path
    if data is None:
        return None
    for name in _FILES[kind]:
        if (data / name).is_file():
            return data / name
    return None


def _encode(obj) -> bytes:
    return zlib.compress(json.dumps(obj, separators=(",", ":")).encode(), 3)


def _decode(blob: bytes):
    return json.loads(zlib.decompress(blob))


def _build(files: dict[str, Path | None], folder: Path, human_rule: str) -> dict:
    db = sqlite3.connect(folder / "products.sqlite")
    db.executescript("""
        PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
        CREATE TABLE side (kind TEXT, asin TEXT, data BLOB, PRIMARY KEY (kind, asin));
        CREATE TABLE products (pos INTEGER PRIMARY KEY, asin TEXT UNIQUE, data BLOB);
        CREATE TABLE goals (kind TEXT, pos INTEGER, product INTEGER, item INTEGER, cap REAL,
                            PRIMARY KEY (kind, pos));
    """)
    for kind, stream in (("attributes", iter_json_object), ("human", iter_json_object)):
        path = files[kind]
        if path is not None:
            db.executemany(
                "INSERT OR REPLACE INTO side VALUES (?, ?, ?)",
                ((kind, asin, _encode(value)) for asin, value in stream(path)),
            )
    if files["reviews"] is not None:
        db.executemany(
            "INSERT OR REPLACE INTO side VALUES ('reviews', ?, ?)",
            ((r["asin"], _encode(r)) for r in iter_json_array(files["reviews"]) if "asin" in r),
        )

    def side(kind: str, asin: str):
        row = db.execute("SELECT data FROM side WHERE kind = ? AND asin = ?", (kind, asin)).fetchone()
        return _decode(row[0]) if row else None

    synthetic: list[tuple[int, int, float]] = []  # (product, combination, cap) in the original's order
    human: list[tuple[int, int, float]] = []  # (product, instruction, cap)
    syn_rng = random.Random(GOAL_SEED)  # AgentGym seeds before the synthetic goals
    human_rng = random.Random(GOAL_SEED)
    seen: set[str] = set()
    index_folder = folder / "index"

    def products() -> Iterator[tuple[int, str]]:
        pos = 0
        products_file = files["products"]
        assert products_file is not None  # RealCatalogue refuses to build without a products file
        for raw in iter_json_array(products_file):
            asin = str(raw.get("asin", ""))
            if asin == "nan" or len(asin) > 10 or asin in seen:
                continue
            seen.add(asin)
            d = clean_product(raw, side("attributes", asin), side("human", asin), side("reviews", asin))
            db.execute("INSERT INTO products VALUES (?, ?, ?)", (pos, asin.upper(), _encode(d)))
            above = _tiers_above(d["price"])
            if d["instruction"] is not None and d["instruction_attributes"]:
                cap = NO_CAP if len(above) < 2 else max(syn_rng.sample(above, 2))
                names = sorted(d["options"])
                combos = 1
                for name in names:
                    combos *= len(d["options"][name])
                synthetic.extend((pos, c, cap) for c in range(combos))
            for j, h in enumerate(d["human"]):
                if not h.get("instruction_attributes"):
                    continue
                if human_rule == "agentgym":
                    if len(above) >= 2:
                        human.extend((pos, j, above[i]) for i in range(len(above)))
                    else:
                        human.extend((pos, j, NO_CAP) for _ in range(4))
                else:
                    human.append((pos, j, NO_CAP if len(above) < 2 else max(human_rng.sample(above, 2))))
            yield pos, original_index_text(d)
            pos += 1

    count = build_index(index_folder, products())
    for kind, goals in (("synthetic", synthetic), ("human", human)):
        random.Random(GOAL_SEED).shuffle(goals)  # the original: random.seed(233); random.shuffle(goals)
        db.executemany(
            "INSERT INTO goals VALUES (?, ?, ?, ?, ?)",
            ((kind, i, p, item, cap) for i, (p, item, cap) in enumerate(goals)),
        )
    db.execute("DROP TABLE side")
    db.commit()
    db.execute("VACUUM")
    db.close()
    return {
        "kind": "real",
        "products": count,
        "synthetic_goals": len(synthetic),
        "human_goals": len(human),
        "files": {k: str(v) for k, v in files.items() if v is not None},
        "human_rule": human_rule,
    }


class RealCatalogue:
    """The original products, served from the cache folder's SQLite file and tantivy index."""

    def __init__(
        self,
        data: str | Path | None = None,
        *,
        products_file=None,
        attributes_file=None,
        human_file=None,
        reviews_file=None,
        cache_dir: str | Path | None = None,
        human_rule: str = "original",
    ):
        if human_rule not in ("original", "agentgym"):
            raise ValueError(f"human_rule must be original or agentgym, got {human_rule!r}")
        folder = Path(data).expanduser() if data is not None else None
        if folder is not None and not folder.is_dir():
            raise FileNotFoundError(f"WebShop data folder not found: {folder}")
        self.files = {
            "products": _find(folder, "products", products_file),
            "attributes": _find(folder, "attributes", attributes_file),
            "human": _find(folder, "human", human_file),
            "reviews": _find(folder, "reviews", reviews_file),
        }
        if self.files["products"] is None:
            raise FileNotFoundError(f"no items_shuffle_1000.json or items_shuffle.json in {folder}")
        self.origin = str(self.files["products"])
        key = hashlib.sha256(
            json.dumps(
                {
                    "v": LOADER_VERSION,
                    "rule": human_rule,
                    "files": {
                        k: [str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] if p else None
                        for k, p in self.files.items()
                    },
                },
                sort_keys=True,
            ).encode()
        ).hexdigest()[:16]
        self.folder = Path(cache_dir or default_cache_dir()) / f"real-{key}"
        self.meta = build_once(self.folder, lambda scratch: _build(self.files, scratch, human_rule))
        self._db = sqlite3.connect(f"file:{self.folder / 'products.sqlite'}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        self.search_index = SearchIndex(self.folder / "index")
        self._count = int(self.meta["products"])
        self._record = lru_cache(maxsize=4096)(self._load)

    def __len__(self) -> int:
        return self._count

    def _query(self, sql: str, args: tuple):
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _load(self, index: int) -> dict:
        row = self._query("SELECT data FROM products WHERE pos = ?", (index,))
        if row is None:
            raise IndexError(index)
        return _decode(row[0])

    def record(self, index: int) -> dict:
        return self._record(index)

    def product(self, index: int) -> Product:
        return _to_product(self.record(index))

    def price_of(self, index: int, product: Product) -> float:
        return product.price

    def index_of(self, asin: str) -> int | None:
        row = self._query("SELECT pos FROM products WHERE asin = ?", (asin.strip().upper(),))
        return int(row[0]) if row else None

    def search(self, keywords: str) -> list[int]:
        return self.search_index.search(keywords)

    def goal_count(self, kind: str) -> int:
        return int(self.meta[f"{kind}_goals"])

    def goal(self, kind: str, position: int) -> tuple[Goal, int]:
        row = self._query("SELECT product, item, cap FROM goals WHERE kind = ? AND pos = ?", (kind, position))
        if row is None:
            raise IndexError(position)
        index, item, cap = int(row[0]), int(row[1]), float(row[2])
        d = self.record(index)
        cap_text = price_text(None if cap >= NO_CAP else cap)
        if kind == "synthetic":
            names = sorted(d["options"])
            combo = next(itertools.islice(itertools.product(*(d["options"][n] for n in names)), item, None))
            options = tuple(zip(names, combo, strict=True))
            option_text = ", and ".join(f"{k}: {v}" for k, v in options)
            instruction = d["instruction"] + (" with " + option_text if option_text else "") + cap_text
            attributes = tuple(d["instruction_attributes"])
        else:
            h = d["human"][item]
            instruction = h["instruction"].strip(".") + cap_text
            attributes = tuple(h["instruction_attributes"])
            options = tuple(("", str(v)) for v in h.get("instruction_options") or ())
        return Goal(
            asin=d["asin"],
            instruction=instruction,
            attributes=attributes,
            options=options,
            price_upper=cap,
            query=d["query"],
            category=d["category"],
            product_category=d["product_category"],
            name=d["title"],
        ), index

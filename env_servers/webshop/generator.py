"""The procedural catalogue: any number of products from a seed, as a compact numpy table.

A product is one fixed-size row of codes (type, brand, series, attribute ids, offered option values,
price, style bits); text is rendered from the row when a page needs it (render.py), so a million
products take ~50 MB on disk and nothing in memory until mapped.

Products come in families: one type, mostly one brand, a shared base of attributes, option values
and price, and members that drift from that base (other brand, some attributes swapped, other
option values, a different price). A family's other members are the distractors of any goal drawn
from one member: they share the type and most words, so search finds them together, and only
careful reading (attributes, options, price) tells them apart. `distractors` sets the mean number
of them per family; each product records its family size, which the difficulty tiers use.

Generation is vectorised over chunks of 65,536 products, each from its own seeded generator, so a
catalogue of N products is exactly the first N products of any larger one with the same seed
(except that the last family may be cut short) and 1M products take seconds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gymwire.env_servers.webshop.vocabulary import (
    ATTRIBUTES,
    BRANDS,
    N_SERIES,
    OPTION_SETS,
    PRODUCT_TYPES,
)

GENERATOR_VERSION = 2
CHUNK = 1 << 16
MAX_ATTRS = 6
MAX_DIMS = 3
MAX_VALUES = 16
MAX_FAMILY = 16
NO_ATTR = 0xFFFF
NO_OPTION = 0xFF

ATTRIBUTE_NAMES: tuple[str, ...] = tuple(sorted(ATTRIBUTES))
ATTRIBUTE_ID = {name: i for i, name in enumerate(ATTRIBUTE_NAMES)}
OPTION_SET_KEYS: tuple[str, ...] = tuple(OPTION_SETS)
OPTION_SET_ID = {key: i for i, key in enumerate(OPTION_SET_KEYS)}

ROW = np.dtype(
    [
        ("type", "<u2"),
        ("brand", "<u2"),
        ("series", "<u2"),
        ("noun", "u1"),
        ("family", "<u4"),
        ("family_size", "u1"),
        ("member", "u1"),
        ("n_attrs", "u1"),
        ("n_goal_attrs", "u1"),
        ("attrs", "<u2", (MAX_ATTRS,)),
        ("n_dims", "u1"),
        ("option_set", "u1", (MAX_DIMS,)),
        ("option_mask", "<u4", (MAX_DIMS,)),
        ("price_cents", "<u4"),
        ("style", "<u4"),
    ]
)


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per type: attribute pool (padded), pool size, option sets (padded), price range."""
    pool_width = max(len(t.attributes) for t in PRODUCT_TYPES)
    pools = np.full((len(PRODUCT_TYPES), pool_width), -1, dtype=np.int32)
    sizes = np.zeros(len(PRODUCT_TYPES), dtype=np.int32)
    options = np.full((len(PRODUCT_TYPES), MAX_DIMS), NO_OPTION, dtype=np.int32)
    low = np.zeros(len(PRODUCT_TYPES))
    high = np.zeros(len(PRODUCT_TYPES))
    for i, t in enumerate(PRODUCT_TYPES):
        pools[i, : len(t.attributes)] = [ATTRIBUTE_ID[a] for a in t.attributes]
        sizes[i] = len(t.attributes)
        options[i, : len(t.options)] = [OPTION_SET_ID[o] for o in t.options]
        low[i], high[i] = t.price
    return pools, sizes, options, low, high, np.array([len(OPTION_SETS[k][1]) for k in OPTION_SET_KEYS])


POOLS, POOL_SIZES, TYPE_OPTIONS, PRICE_LOW, PRICE_HIGH, OPTION_SET_SIZES = _tables()
assert POOLS.shape[1] >= MAX_ATTRS and OPTION_SET_SIZES.max() <= MAX_VALUES


@dataclass(frozen=True)
class CatalogueSpec:
    """Everything that decides a generated catalogue; its fingerprint names the cache folder."""

    products: int = 10_000
    seed: int = 0
    distractors: float = 3.0  # mean number of same-type near-duplicates per family

    def __post_init__(self) -> None:
        if not 1 <= self.products <= 50_000_000:
            raise ValueError(f"products must be 1..50,000,000, got {self.products}")
        if not 0.0 <= self.distractors <= MAX_FAMILY - 1:
            raise ValueError(f"distractors must be 0..{MAX_FAMILY - 1}, got {self.distractors}")

    def fingerprint(self) -> str:
        key = f"webshop-gen-v{GENERATOR_VERSION}:{self.products}:{self.seed}:{self.distractors:.6f}"
        return hashlib.sha256(key.encode()).hexdigest()[:16]


def _chunk(spec: CatalogueSpec, chunk: int) -> np.ndarray:
    # A whole chunk is always drawn and then cut, so every prefix of a catalogue is the same.
    keep = min(CHUNK, spec.products - chunk * CHUNK)
    n = CHUNK
    rng = np.random.default_rng([spec.seed, chunk, 0x57EB])
    rows = np.zeros(n, dtype=ROW)

    # families: sizes ~ geometric with mean 1 + distractors, cut at the chunk's end
    sizes = np.minimum(rng.geometric(1.0 / (1.0 + spec.distractors), size=n), MAX_FAMILY)
    ends = np.cumsum(sizes)
    n_fam = int(np.searchsorted(ends, n)) + 1
    sizes = sizes[:n_fam].copy()
    sizes[-1] -= int(ends[n_fam - 1]) - n
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    fam = np.repeat(np.arange(n_fam), sizes)
    member = np.arange(n) - starts[fam]
    drift = (member > 0)[:, None]

    fam_type = rng.integers(0, len(PRODUCT_TYPES), n_fam)
    fam_brand = rng.integers(0, len(BRANDS), n_fam)
    ptype = fam_type[fam]
    rows["type"] = ptype
    rows["family"] = chunk * CHUNK + fam
    rows["family_size"] = sizes[fam]
    rows["member"] = np.minimum(member, 255)
    rows["brand"] = np.where(rng.random(n) < 0.6, fam_brand[fam], rng.integers(0, len(BRANDS), n))
    rows["series"] = rng.integers(0, N_SERIES, n)
    rows["noun"] = rng.integers(0, 256, n)
    rows["style"] = rng.integers(0, 1 << 32, n, dtype=np.uint32)

    # attributes: highest keys of the type's pool; members perturb the family's keys
    width = POOLS.shape[1]
    keys = rng.random((n_fam, width))[fam] + 0.45 * drift * rng.standard_normal((n, width))
    valid = np.arange(width)[None, :] < POOL_SIZES[ptype][:, None]
    keys = np.where(valid, keys, -np.inf)
    order = np.argsort(-keys, axis=1)[:, :MAX_ATTRS]
    n_attrs = np.minimum(rng.integers(3, MAX_ATTRS + 1, n), POOL_SIZES[ptype])
    attrs = POOLS[ptype[:, None], order]
    attrs = np.where(np.arange(MAX_ATTRS)[None, :] < n_attrs[:, None], attrs, NO_ATTR)
    rows["attrs"] = attrs
    rows["n_attrs"] = n_attrs
    n_goal = rng.choice([1, 2, 3, 4], size=n, p=[0.25, 0.35, 0.25, 0.15])
    rows["n_goal_attrs"] = np.minimum(n_goal, n_attrs)

    # options: every dim of the type (later dims dropped now and then), 2-6 offered values each
    sets = TYPE_OPTIONS[ptype]
    present = (sets != NO_OPTION) & ((np.arange(MAX_DIMS)[None, :] == 0) | (rng.random((n, MAX_DIMS)) > 0.15))
    rows["option_set"] = np.where(present, sets, NO_OPTION)
    rows["n_dims"] = present.sum(axis=1)
    set_sizes = np.where(present, OPTION_SET_SIZES[np.where(present, sets, 0)], 0)
    vkeys = rng.random((n_fam, MAX_DIMS, MAX_VALUES))[fam] + 0.5 * drift[:, :, None] * rng.standard_normal(
        (n, MAX_DIMS, MAX_VALUES)
    )
    vkeys = np.where(np.arange(MAX_VALUES)[None, None, :] < set_sizes[:, :, None], vkeys, -np.inf)
    rank = np.argsort(np.argsort(-vkeys, axis=2), axis=2)
    count = np.minimum(rng.integers(2, 7, (n, MAX_DIMS)), set_sizes)
    offered = rank < count[:, :, None]
    rows["option_mask"] = (offered * (1 << np.arange(MAX_VALUES, dtype=np.uint32))).sum(axis=2).astype(np.uint32)

    # price: log-uniform family base within the type's range; members drift (~30%), and a quarter of
    # them are premium editions at 1.6-2.6x, which goal price caps often exclude
    lo, hi = PRICE_LOW[fam_type], PRICE_HIGH[fam_type]
    base = np.exp(rng.uniform(np.log(lo), np.log(hi)))[fam]
    premium = np.where(rng.random(n) < 0.25, rng.uniform(1.6, 2.6, n), 1.0)
    price = base * np.where(drift[:, 0], np.exp(0.3 * rng.standard_normal(n)) * premium, 1.0)
    endings = np.array([99, 49, 95, 0])[rng.integers(0, 4, n)]
    rows["price_cents"] = np.maximum(np.floor(price), 1).astype(np.uint32) * 100 + endings

    rows = rows[:keep].copy()
    last = fam[keep - 1]
    rows["family_size"][fam[:keep] == last] = keep - starts[last]  # the family cut at the end
    return rows


def iter_chunks(spec: CatalogueSpec) -> Iterator[np.ndarray]:
    """The catalogue's rows, one chunk at a time (for streaming to disk)."""
    for chunk in range((spec.products + CHUNK - 1) // CHUNK):
        yield _chunk(spec, chunk)


def generate(spec: CatalogueSpec) -> np.ndarray:
    """All rows at once (tests and small catalogues)."""
    return np.concatenate(list(iter_chunks(spec)))


# --- ASINs: a seeded bijection between positions and 10-character ids ---------------------------

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_SPACE = 36**8
_MULT = 2_654_435_761  # odd and not a multiple of 3: invertible modulo 36^8
_INVERSE = pow(_MULT, -1, _SPACE)


@lru_cache(maxsize=64)
def _offset(seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"asin:{seed}".encode()).digest()[:8], "big") % _SPACE


def asin_of(index: int, seed: int) -> str:
    x = (index * _MULT + _offset(seed)) % _SPACE
    chars = []
    for _ in range(8):
        x, r = divmod(x, 36)
        chars.append(_ALPHABET[r])
    return "B0" + "".join(reversed(chars))


def index_of_asin(asin: str, seed: int) -> int | None:
    """The position an ASIN names, or None when it is not a generated ASIN of this seed."""
    asin = asin.strip().upper()
    if len(asin) != 10 or not asin.startswith("B0"):
        return None
    x = 0
    for ch in asin[2:]:
        digit = _ALPHABET.find(ch)
        if digit < 0:
            return None
        x = x * 36 + digit
    return ((x - _offset(seed)) * _INVERSE) % _SPACE

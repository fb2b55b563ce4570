"""Text of a generated product, rendered from its row when a page (or the indexer) needs it.

Titles, features and descriptions mention exactly the product's own attributes, in phrasings picked
by the row's style bits, so the reward's text fallback (a goal attribute found in title, features or
description) agrees with the hidden attribute list. Option values stay out of the prose: the agent
sees them as buttons on the item page; the search index sees them as option text.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gymwire.env_servers.webshop.generator import (
    ATTRIBUTE_NAMES,
    NO_ATTR,
    NO_OPTION,
    OPTION_SET_KEYS,
    asin_of,
)
from gymwire.env_servers.webshop.product import Product
from gymwire.env_servers.webshop.vocabulary import (
    ADJ,
    ATTRIBUTES,
    BRANDS,
    FOR,
    OPTION_SETS,
    PRODUCT_TYPES,
    WITH,
    series_name,
)

_TYPE_PATHS = tuple(t.category_path for t in PRODUCT_TYPES)

_ADJ_BULLETS = (
    "{A}: a detail you notice from the first day",
    "{A} by design, checked by our quality team",
    "Key feature - {a}",
)
_WITH_BULLETS = (
    "Made with {a} for lasting quality",
    "Features {a} where it matters most",
    "{A} included, no extra parts to buy",
)
_FOR_BULLETS = ("A great choice for {a}", "Designed with {a} in mind", "Ready for {a} right out of the box")
_FILLER_BULLETS = (
    "Backed by a 30 day return window",
    "Ships in recyclable packaging",
    "Our support team answers within one business day",
    "Thousands of happy customers",
)


def _title_case(phrase: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in phrase.split())


# per attribute id: its kind, title-cased form and three feature bullets (rendering is per page view)
_KINDS = tuple(ATTRIBUTES[a] for a in ATTRIBUTE_NAMES)
_TITLES = tuple(_title_case(a) for a in ATTRIBUTE_NAMES)
_BULLETS = tuple(
    tuple(
        frame.format(a=a, A=_title_case(a))
        for frame in {ADJ: _ADJ_BULLETS, WITH: _WITH_BULLETS, FOR: _FOR_BULLETS}[ATTRIBUTES[a]]
    )
    for a in ATTRIBUTE_NAMES
)


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


@lru_cache(maxsize=8192)
def _offered(set_id: int, mask: int) -> tuple[str, tuple[str, ...]]:
    name, values = OPTION_SETS[OPTION_SET_KEYS[set_id]]
    return name, tuple(v for i, v in enumerate(values) if mask >> i & 1)


def option_values(row: np.void) -> dict[str, tuple[str, ...]]:
    """The row's offered option values by option name, in the type's order."""
    out: dict[str, tuple[str, ...]] = {}
    for set_id, mask in zip(row["option_set"].tolist(), row["option_mask"].tolist(), strict=True):
        if set_id != NO_OPTION:
            name, values = _offered(set_id, mask)
            out[name] = values
    return out


def _attribute_ids(row: np.void) -> list[int]:
    return [a for a in row["attrs"].tolist()[: int(row["n_attrs"])] if a != NO_ATTR]


def attributes_of(row: np.void) -> tuple[str, ...]:
    return tuple(ATTRIBUTE_NAMES[a] for a in _attribute_ids(row))


def render(row: np.void, index: int, seed: int) -> Product:
    ptype_id = int(row["type"])
    ptype = PRODUCT_TYPES[ptype_id]
    style = int(row["style"])
    brand = BRANDS[int(row["brand"])]
    series = series_name(int(row["series"]))
    noun = ptype.nouns[int(row["noun"]) % len(ptype.nouns)]
    ids = _attribute_ids(row)
    attrs = tuple(ATTRIBUTE_NAMES[a] for a in ids)

    # title: 1-3 attributes, in one of four shapes
    shown = ids[: 1 + (style >> 2) % 3]
    shown_title = [_TITLES[a] for a in shown]
    shape = style & 3
    if shape == 0:
        adjs = " ".join(_TITLES[a] for a in shown if _KINDS[a] == ADJ)
        withs = [_TITLES[a] for a in shown if _KINDS[a] == WITH]
        fors = [_TITLES[a] for a in shown if _KINDS[a] == FOR]
        title = " ".join(p for p in (brand, series, adjs, noun) if p)
        title += (" with " + ", ".join(withs) if withs else "") + (" for " + ", ".join(fors) if fors else "")
    elif shape == 1:
        title = f"{brand} {noun}, {', '.join(shown_title)} - {series}"
    elif shape == 2:
        title = f"{series} {noun} by {brand} | {' | '.join(shown_title)}"
    else:
        title = f"{brand} {series} {noun} ({', '.join(shown_title)})"

    # features: one bullet per attribute, then a filler
    bullets = [_BULLETS[a][(style >> (4 + 2 * i)) % 3] for i, a in enumerate(ids)]
    bullets.append(_FILLER_BULLETS[(style >> 16) % len(_FILLER_BULLETS)])

    # description: every attribute again, grouped the way goals group them
    parts = [f"Meet the {brand} {series} {noun.lower()} from our {ptype.phrase} collection."]
    adj_list = [ATTRIBUTE_NAMES[a] for a in ids if _KINDS[a] == ADJ]
    with_list = [ATTRIBUTE_NAMES[a] for a in ids if _KINDS[a] == WITH]
    for_list = [ATTRIBUTE_NAMES[a] for a in ids if _KINDS[a] == FOR]
    if adj_list:
        parts.append(f"It is {_join(adj_list)}.")
    if with_list:
        parts.append(f"It comes with {_join(with_list)}.")
    if for_list:
        parts.append(f"Made for {_join(for_list)}.")
    parts.append("Check the options above before you buy.")

    price = int(row["price_cents"]) / 100
    return Product(
        asin=asin_of(index, seed),
        title=title,
        price=price,
        price_tag=f"${price:.2f}",
        options=option_values(row),
        attributes=attrs,
        bullets=tuple(bullets),
        description=" ".join(parts),
        query=ptype.phrase,
        category=ptype.department,
        product_category=_TYPE_PATHS[ptype_id],
    )

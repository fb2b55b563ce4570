"""Goals: what to buy, and the instruction that says it, with the original's price-cap rule.

The original's synthetic instruction reads `Find me <adj attributes> <product> with <with
attributes> for <for attributes>`; a goal adds its option values (`with color: black, and size:
large`, option names sorted) and a price cap (`, and price lower than 40.00 dollars`). The cap
comes from the price tiers 10, 20, ..., 990: take the first four tiers above the product's price,
sample two, keep the larger, so the cap is the 2nd, 3rd or 4th tier above the price; a product
priced within one tier of 990 (or above) gets no cap and no price text. A goal without a cap still
counts the price term of the reward, against 1,000,000.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from gymwire.env_servers.webshop.generator import asin_of
from gymwire.env_servers.webshop.render import attributes_of, option_values
from gymwire.env_servers.webshop.vocabulary import ADJ, ATTRIBUTES, FOR, PRODUCT_TYPES, WITH

PRICE_TIERS: tuple[float, ...] = tuple(10.0 * i for i in range(1, 100))
NO_CAP = 1_000_000.0


@dataclass(frozen=True)
class Goal:
    asin: str  # the target product
    instruction: str
    attributes: tuple[str, ...]
    options: tuple[tuple[str, str], ...]  # (option name, value); the name is "" when unknown (human goals)
    price_upper: float
    query: str  # the target's fields that the type reward compares with the bought product's
    category: str
    product_category: str
    name: str  # the target's title

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(value for _, value in self.options)


def price_cap(price: float, rng: random.Random) -> float | None:
    """The original's cap for a product of `price`: the larger of two tiers sampled from the
    first four above it, or None when fewer than two tiers lie above."""
    above = [p for p in PRICE_TIERS if p > price][:4]
    if len(above) < 2:
        return None
    return max(rng.sample(above, 2))


def price_text(cap: float | None) -> str:
    return "" if cap is None else f", and price lower than {cap:.2f} dollars"


def options_text(options: tuple[tuple[str, str], ...]) -> str:
    text = ", and ".join(f"{name}: {value}" for name, value in options)
    return " with " + text if text else ""


def attribute_phrase(attributes: tuple[str, ...], product_phrase: str) -> str:
    """`<adj, adj> <product> with <with, with> for <for, for>`, the original's synthetic order."""
    adjs = [a for a in attributes if ATTRIBUTES.get(a) == ADJ]
    withs = [a for a in attributes if ATTRIBUTES.get(a) == WITH]
    fors = [a for a in attributes if ATTRIBUTES.get(a) == FOR]
    text = (", ".join(adjs) + " " if adjs else "") + product_phrase
    if withs:
        text += " with " + ", ".join(withs)
    if fors:
        text += " for " + ", ".join(fors)
    return text


def goal_rng(seed: int, index: int, variant: int) -> random.Random:
    return random.Random(f"webshop-goal:{seed}:{index}:{variant}")


def generated_goal(row: np.void, index: int, seed: int, variant: int, title: str) -> Goal:
    """Goal number `variant` for generated product `index`: its first `n_goal_attrs` attributes,
    one offered value per option (drawn), and a cap drawn by the original's rule."""
    ptype = PRODUCT_TYPES[int(row["type"])]
    attributes = attributes_of(row)[: int(row["n_goal_attrs"])]
    rng = goal_rng(seed, index, variant)
    offered = option_values(row)
    options = tuple((name, rng.choice(offered[name])) for name in sorted(offered))
    price = int(row["price_cents"]) / 100
    cap = price_cap(price, rng)
    instruction = "Find me " + attribute_phrase(attributes, ptype.phrase) + options_text(options) + price_text(cap)
    return Goal(
        asin=asin_of(index, seed),
        instruction=instruction,
        attributes=attributes,
        options=options,
        price_upper=NO_CAP if cap is None else cap,
        query=ptype.phrase,
        category=ptype.department,
        product_category=ptype.category_path,
        name=title,
    )

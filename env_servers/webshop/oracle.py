"""The expert: search the instruction, page to the target, open it, set each goal option, buy.

It reads the shop's current page every turn, so it also recovers after an agent wandered off. On a
results page it opens the target when it is listed; otherwise (unless `strict`) it opens any
listed product that would score 1 with the goal's options (same-type twins that satisfy the goal
are common in a large catalogue, and buying one is as good as buying the target). When five pages
of the instruction's results hold no such product, it goes back and searches the target's exact
title instead. Wrong item pages and sub-pages are left with `< Prev`.
"""

from __future__ import annotations

import re

from gymwire.env_servers.webshop.product import Product
from gymwire.env_servers.webshop.reward import score
from gymwire.env_servers.webshop.shop import BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE, PREV_PAGE, Shop

_PRICE_CLAUSE = re.compile(r",?\s*and price lower than [\d.]+ dollars\s*$", re.IGNORECASE)
_LEAD = re.compile(r"^\s*(find me|i need|i want|i am looking for|i'm looking for)\s+", re.IGNORECASE)


def instruction_query(instruction: str) -> str:
    """The search the expert types: the instruction without its lead-in, price clause and punctuation."""
    text = _LEAD.sub("", _PRICE_CLAUSE.sub("", instruction))
    return " ".join(re.sub(r"[,:;.]", " ", text.lower()).split())


def choose_options(product: Product, goal_options: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """For each goal option the product offers exactly, option name -> value (names may be unknown)."""
    chosen: dict[str, str] = {}
    for name, value in goal_options:
        if name and value in product.options.get(name, ()):
            chosen[name] = value
            continue
        holders = [n for n, values in product.options.items() if value in values]
        if holders:
            chosen[holders[-1]] = value
    return chosen


def turn(thought: str, action: str) -> str:
    return f"Thought: {thought}\nAction: {action}"


class Expert:
    def __init__(self, shop: Shop, target: int | None, strict: bool = False):
        self.shop = shop
        self.target = target
        self.strict = strict  # only the target itself will do
        self.fallback = False  # searching the target's title, after the instruction's search failed
        self._acceptable: dict[int, bool] = {}

    def acceptable(self, index: int) -> bool:
        if index == self.target:
            return True
        if self.strict and self.target is not None:
            return False
        if index not in self._acceptable:
            self._acceptable[index] = self._score(index) >= 1.0 - 1e-9
        return self._acceptable[index]

    def next_turn(self) -> str | None:
        page = self.shop.page
        goal = self.shop.goal
        if page.kind == "done":
            return None
        if page.kind == "start":
            if self.fallback and self.target is not None:
                title = self.shop.product(self.target).title
                return turn(
                    "The first search did not show a matching product, so I will search the exact product title.",
                    f"search[{title}]",
                )
            return turn(
                "I will search for the product the instruction describes.",
                f"search[{instruction_query(goal.instruction)}]",
            )
        if page.kind == "results":
            listed = self.shop.page_results()
            pick = self.target if self.target in listed else next((i for i in listed if self.acceptable(i)), None)
            if pick is not None:
                asin = self.shop.product(pick).asin
                return turn(f"{asin} matches what the instruction asks for, so I will open it.", f"click[{asin}]")
            if NEXT_PAGE in self.shop.clickables():
                return turn(
                    "None of these results matches every requirement; I will look at the next page.",
                    f"click[{NEXT_PAGE}]",
                )
            if not self.fallback:
                self.fallback = True
                return turn("No result matches; I will go back and search more precisely.", f"click[{BACK_TO_SEARCH}]")
            if listed:  # even the title search failed: take the best-scoring listed product
                best = max(listed, key=lambda i: self._score(i))
                asin = self.shop.product(best).asin
                return turn(f"{asin} is the closest match I can find.", f"click[{asin}]")
            return turn("There are no results; I will go back.", f"click[{BACK_TO_SEARCH}]")
        if page.kind == "item":
            assert page.item is not None
            product = self.shop.product(page.item)
            if not self.acceptable(page.item) and not self.fallback:
                return turn(
                    "This product does not match the instruction; I will go back to the results.", f"click[{PREV_PAGE}]"
                )
            for name, value in choose_options(product, goal.options).items():
                if page.options.get(name) != value:
                    return turn(
                        f"The instruction asks for {name or 'option'} {value}, so I select it.", f"click[{value}]"
                    )
            return turn(
                "The product matches the attributes, the options and the price limit, so I will buy it.",
                f"click[{BUY_NOW}]",
            )
        return turn("I have read enough here; I will go back to the product.", f"click[{PREV_PAGE}]")

    def _score(self, index: int) -> float:
        product = self.shop.product(index)
        chosen = choose_options(product, self.shop.goal.options)
        return score(
            product,
            chosen,
            self.shop.price_of(index, product),
            self.shop.goal,
            self.shop.option_rule,
            self.shop.names_quirk,
        ).reward

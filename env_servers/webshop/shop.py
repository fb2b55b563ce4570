"""One shopper's browser on the store: pages as text, clickables, and the two actions.

Pages are the original's simple text mode: visible elements joined by ` [SEP] `.

    start    WebShop [SEP] Instruction: [SEP] <instruction> [SEP] Search
    results  Instruction: [SEP] <instruction> [SEP] Back to Search [SEP] Page 2 (Total results: 50)
             [SEP] < Prev [SEP] Next > [SEP] <ASIN> [SEP] <title> [SEP] <price> ...
    item     Instruction: [SEP] <instruction> [SEP] Back to Search [SEP] < Prev [SEP] <option name>
             [SEP] <value> ... [SEP] <title> [SEP] Price: <price> [SEP] Rating: N.A. [SEP]
             Description [SEP] Features [SEP] Reviews [SEP] Buy Now
    sub-page Instruction: [SEP] <instruction> [SEP] Back to Search [SEP] < Prev [SEP] <content>
    done     Thank you for shopping with us! [SEP] ... [SEP] Your score (min 0.0, max 1.0) [SEP] <reward>

Results show 10 products a page out of at most 50; `< Prev` appears after page 1 and `Next >`
while more results follow. Actions are `search[<keywords>]`, only on the start page (the one with a
search box; switch `search_anywhere` restores the original's acceptance everywhere), and
`click[<value>]` for a clickable of the current page, compared lower-cased: buttons, product ASINs,
option values. `click[search]` is not a click (the original refuses it too). Anything else changes
nothing and is reported invalid. `click[buy now]` ends the episode with the reward.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gymwire.env_servers.webshop.goals import Goal
from gymwire.env_servers.webshop.product import Product
from gymwire.env_servers.webshop.reward import RewardInfo, score

SEP = " [SEP] "
PRODUCT_WINDOW = 10
BACK_TO_SEARCH, NEXT_PAGE, PREV_PAGE, BUY_NOW = "back to search", "next >", "< prev", "buy now"
SUB_PAGES = {"description": "Description", "features": "Features", "reviews": "Reviews"}
_ACTION = re.compile(r"(search|click)\s*\[(.*)\]", re.IGNORECASE | re.DOTALL)


class Store(Protocol):
    """What a shop needs from a catalogue."""

    def product(self, index: int) -> Product: ...

    def index_of(self, asin: str) -> int | None: ...

    def search(self, keywords: str) -> list[int]: ...


def parse_action(action: str) -> tuple[str, str] | None:
    """`search[...]` / `click[...]` -> (verb, lower-cased argument), else None."""
    m = _ACTION.fullmatch(action.strip())
    if m is None:
        return None
    return m.group(1).lower(), m.group(2).strip().lower()


@dataclass
class Page:
    kind: str = "start"  # start | results | item | sub | done
    keywords: str = ""
    page: int = 1
    results: list[int] = field(default_factory=list)
    item: int | None = None
    options: dict[str, str] = field(default_factory=dict)  # option name -> chosen value
    sub: str = ""  # description | features | reviews


@dataclass(frozen=True)
class ActResult:
    valid: bool
    reward: float = 0.0
    done: bool = False
    info: RewardInfo | None = None


class Shop:
    """The state of one episode's browser, with the goal it is scored against."""

    def __init__(
        self,
        store: Store,
        goal: Goal,
        *,
        option_rule: str = "agentgym",
        names_quirk: bool = False,
        search_anywhere: bool = False,
        price_of: Callable[[int, Product], float] | None = None,
    ):
        self.store = store
        self.goal = goal
        self.option_rule = option_rule
        self.names_quirk = names_quirk
        self.search_anywhere = search_anywhere
        self.price_of = price_of or (lambda _index, product: product.price)
        self.page = Page()
        self.reward_info: RewardInfo | None = None
        self._cache: dict[int, Product] = {}

    # --- reading -------------------------------------------------------------------------------

    def product(self, index: int) -> Product:
        product = self._cache.get(index)
        if product is None:
            if len(self._cache) > 64:
                self._cache.clear()
            product = self._cache[index] = self.store.product(index)
        return product

    @property
    def has_search_bar(self) -> bool:
        return self.page.kind == "start"

    def page_results(self) -> list[int]:
        start = (self.page.page - 1) * PRODUCT_WINDOW
        return self.page.results[start : start + PRODUCT_WINDOW]

    def clickables(self) -> list[str]:
        p = self.page
        if p.kind == "start":
            return ["search"]
        if p.kind == "results":
            out = [BACK_TO_SEARCH]
            if p.page > 1:
                out.append(PREV_PAGE)
            if p.page * PRODUCT_WINDOW < len(p.results):
                out.append(NEXT_PAGE)
            return out + [self.product(i).asin.lower() for i in self.page_results()]
        if p.kind == "item":
            assert p.item is not None
            values = [v for values in self.product(p.item).options.values() for v in values]
            return [BACK_TO_SEARCH, PREV_PAGE, *dict.fromkeys(values), *SUB_PAGES, BUY_NOW]
        if p.kind == "sub":
            return [BACK_TO_SEARCH, PREV_PAGE]
        return []

    def valid_actions(self) -> list[str]:
        actions = (
            ["search[<keywords>]"] if self.has_search_bar or (self.search_anywhere and self.page.kind != "done") else []
        )
        return actions + [f"click[{c}]" for c in self.clickables() if c != "search"]

    def text(self) -> str:
        p = self.page
        instruction = self.goal.instruction
        if p.kind == "start":
            return SEP.join(("WebShop", "Instruction:", instruction, "Search"))
        if p.kind == "done":
            return self._done_text()
        parts = ["Instruction:", instruction, "Back to Search"]
        if p.kind == "results":
            parts.append(f"Page {p.page} (Total results: {len(p.results)})")
            if p.page > 1:
                parts.append("< Prev")
            if p.page * PRODUCT_WINDOW < len(p.results):
                parts.append("Next >")
            for index in self.page_results():
                product = self.product(index)
                parts += [product.asin, product.title, product.price_tag]
            return SEP.join(parts)
        assert p.item is not None
        product = self.product(p.item)
        parts.append("< Prev")
        if p.kind == "item":
            for name, values in product.options.items():
                parts += [name, *values]
            parts += [
                product.title,
                f"Price: {product.price_tag}",
                f"Rating: {product.rating}",
                "Description",
                "Features",
                "Reviews",
                "Buy Now",
            ]
        elif p.sub == "description":
            parts.append(product.description)
        elif p.sub == "features":
            parts += list(product.bullets)
        else:
            for review in product.reviews:
                parts += [review.title, review.score, review.body]
        return SEP.join(x for x in parts if x)

    def _done_text(self) -> str:
        p = self.page
        asin = self.product(p.item).asin if p.item is not None else "None"
        reward = self.reward_info.reward if self.reward_info else 0.0
        return SEP.join(
            (
                "Thank you for shopping with us!",
                "Purchased",
                "asin",
                asin,
                "options",
                json.dumps(p.options),
                "Your score (min 0.0, max 1.0)",
                f"{reward:.4g}",
            )
        )

    # --- acting --------------------------------------------------------------------------------

    def act(self, action: str) -> ActResult:
        parsed = parse_action(action)
        if parsed is None or self.page.kind == "done":
            return ActResult(False)
        verb, arg = parsed
        if verb == "search":
            if not arg or not (self.has_search_bar or self.search_anywhere):
                return ActResult(False)
            self._search(arg)
            return ActResult(True)
        if arg == "search" or arg not in self.clickables():
            return ActResult(False)
        return self._click(arg)

    def _search(self, keywords: str, page: int = 1) -> None:
        keywords = " ".join(keywords.split())
        self.page = Page("results", keywords=keywords, page=page, results=self.store.search(keywords))

    def _click(self, arg: str) -> ActResult:
        p = self.page
        if arg == BACK_TO_SEARCH:
            self.page = Page()
        elif p.kind == "results":
            if arg == NEXT_PAGE:
                p.page += 1
            elif arg == PREV_PAGE:
                p.page -= 1
            else:
                index = self.store.index_of(arg)
                self.page = Page("item", keywords=p.keywords, page=p.page, results=p.results, item=index)
        elif p.kind == "item":
            if arg == PREV_PAGE:
                self.page = Page("results", keywords=p.keywords, page=p.page, results=p.results)
            elif arg in SUB_PAGES:
                p.kind, p.sub = "sub", arg
            elif arg == BUY_NOW:
                return self._buy()
            else:  # an option value; when two options hold it, the last one wins, as in the original
                assert p.item is not None
                holders = [name for name, values in self.product(p.item).options.items() if arg in values]
                p.options[holders[-1]] = arg
        elif p.kind == "sub" and arg == PREV_PAGE:
            p.kind, p.sub = "item", ""
        return ActResult(True)

    def _buy(self) -> ActResult:
        p = self.page
        assert p.item is not None
        product = self.product(p.item)
        info = score(product, p.options, self.price_of(p.item, product), self.goal, self.option_rule, self.names_quirk)
        self.reward_info = info
        p.kind = "done"
        return ActResult(True, info.reward, True, info)

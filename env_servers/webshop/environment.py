"""WebShop as a gymwire `Environment`: find, customise and buy the product an instruction describes.

Two stores: a generated catalogue of any size (default; built once into a cache folder, see
store.py) or the original product files from a user's folder (`data=...`, see real_data.py). The
pages, actions and reward are the original's (shop.py, reward.py); tasks, tiers and splits are in
tasks.py.

Signals in `info` (the SDK's well-known keys): every step gives the page kind (`page`). Opening a
product's Description, Features or Reviews says `verified: true`. `click[buy now]` says
`committed: true`, with `verified` true when the bought product's details were opened earlier in
the episode, and the reward's parts (`r_type`, `attribute_matches`, `option_matches`, `price_ok`)
and the bought `asin`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gymwire.env_servers.sdk import (
    EnvDescription,
    Environment,
    Episode,
    StepOutcome,
    Task,
    TaskCatalogue,
    UnknownTask,
    hash_state,
)
from gymwire.env_servers.sdk.actions import extract_action as sdk_extract_action
from gymwire.env_servers.sdk.environment import INFO_COMMITTED, INFO_VERIFIED
from gymwire.env_servers.webshop.generated_tasks import GeneratedTaskSet
from gymwire.env_servers.webshop.generator import CatalogueSpec
from gymwire.env_servers.webshop.oracle import Expert
from gymwire.env_servers.webshop.reward import OPTION_RULES
from gymwire.env_servers.webshop.shop import Shop
from gymwire.env_servers.webshop.store import GeneratedCatalogue
from gymwire.env_servers.webshop.tasks import TierRule

if TYPE_CHECKING:
    from gymwire.env_servers.webshop.real_data import RealCatalogue
    from gymwire.env_servers.webshop.real_tasks import RealTaskSet

VERSION = "1.0.0"

INSTRUCTION = """\
You are shopping in an online store for the product an instruction describes. Every page is shown \
as text, its parts separated by " [SEP] ". The first page holds the instruction and a search box. \
Search results list 10 products per page (product id, title, price), at most 50 in all. A product \
page lists its options (such as color or size), title, price, and the buttons Description, \
Features, Reviews and Buy Now. Buttons, product ids and option values on the current page can be \
clicked.

Actions:
- search[<keywords>]: search the store, only where there is a search box (the first page), \
e.g. search[red running shoes for women]
- click[<value>]: click a button, product id or option value shown on the current page, \
e.g. click[b07xyz1234], click[next >], click[< prev], click[back to search], click[large], \
click[buy now]

Select every option the instruction asks for before buying. click[buy now] ends the task: you \
are scored on how well the bought product matches the requested attributes, options and price. \
Any other action changes nothing.

Each turn, think briefly and then give exactly one action, in the form:
Thought: <your reasoning>
Action: <one action>"""

ACTION_GRAMMAR = (
    "One action per turn, after 'Action:' (text before it is ignored): 'search[<keywords>]' where the page "
    "has a search box, or 'click[<value>]' where <value> is a button, product id or option value on the page "
    "(compared lower-cased). Anything else changes nothing."
)


def extract_action(text: str) -> str:
    """The action in a raw turn (the SDK's convention), stripped of surrounding quotes and backticks; case
    and spacing are kept, because search keywords are passed on as typed."""
    return sdk_extract_action(text, fold=False, trailing="")


class WebShopEpisode(Episode):
    def __init__(self, shop: Shop, target: int | None, strict_expert: bool = False):
        self.shop = shop
        self.expert = Expert(shop, target, strict_expert)
        self.inspected: set[int] = set()  # products whose details the agent opened

    def reset(self) -> str:
        return self.shop.text()

    def step(self, text: str) -> StepOutcome:
        action = extract_action(text)
        was_sub = self.shop.page.kind == "sub"
        result = self.shop.act(action)
        page = self.shop.page
        info: dict = {"page": page.kind}
        if page.kind == "sub" and not was_sub and page.item is not None:
            self.inspected.add(page.item)
            info[INFO_VERIFIED] = True
        if result.info is not None and page.item is not None:  # a purchase, always from a product page
            r = result.info
            info.update(
                r_type=r.r_type,
                attribute_matches=r.attribute_matches,
                option_matches=r.option_matches,
                price_ok=r.price_ok,
                asin=self.shop.product(page.item).asin,
            )
            info.update({INFO_COMMITTED: True, INFO_VERIFIED: page.item in self.inspected})
        return StepOutcome(
            observation=self.shop.text(),
            reward=result.reward,
            terminated=result.done,
            success=result.done and result.reward >= 1.0 - 1e-9,
            action_valid=result.valid,
            parsed_action=action,
            info=info,
        )

    def valid_actions(self) -> list[str] | None:
        return self.shop.valid_actions()

    def expert_action(self) -> str | None:
        return self.expert.next_turn()

    def state_key(self) -> str:
        """The browser's page: which page (start, results, item, sub-page, done), the results and which
        page of them, the product open and the options chosen. The keywords are left out, since only
        the results they found are shown, and so are the products opened before (`inspected`, which
        only the `verified` signal reads)."""
        p = self.shop.page
        page = {"kind": p.kind, "results": p.results, "page": p.page, "item": p.item, "sub": p.sub}
        return hash_state({**page, "options": p.options})


class WebShopEnvironment(Environment):
    """WebShop over a generated catalogue, or over the original files when `data` is given.

    products / seed / distractors: the generated catalogue (size, seed, mean distractors per family).
    data: a folder holding items_shuffle_1000.json, items_ins_v2_1000.json, items_human_ins.json (or
        the full items_shuffle.json / items_ins_v2.json); `products_file`, `attributes_file`,
        `human_file` name the files one by one. `goals`: synthetic | human | both (real data only).
    cache_dir: where catalogues and indices are built once (default ~/.cache/gymwire/webshop).
    tasks_per_tier: listed tasks per (split, tier) for generated catalogues.
    test_percent: share of generated products (by family) and real synthetic goals (by product) in test.
    tier_*: the tier thresholds (see tasks.TierRule).
    option_rule: agentgym (default) | princeton; option_names_quirk: AgentGym's (name, value) comparison.
    search_anywhere: accept search[...] on every page, as the original env did.
    expert_strict: the expert buys only the target itself (default: any product that scores 1).
    human_rule: original | agentgym, how human goals get price caps (real data; see real_data.py).
    """

    def __init__(
        self,
        products: int = 10_000,
        *,
        seed: int = 0,
        distractors: float = 3.0,
        data: str | Path | None = None,
        products_file: str | Path | None = None,
        attributes_file: str | Path | None = None,
        human_file: str | Path | None = None,
        goals: str = "synthetic",
        cache_dir: str | Path | None = None,
        tasks_per_tier: int = 200,
        test_percent: int = 20,
        tier_easy_max_complexity: int = 3,
        tier_easy_max_family: int = 4,
        tier_hard_min_complexity: int = 5,
        tier_hard_min_family: int = 10,
        option_rule: str = "agentgym",
        option_names_quirk: bool = False,
        search_anywhere: bool = False,
        expert_strict: bool = False,
        human_rule: str = "original",
    ):
        if option_rule not in OPTION_RULES:
            raise ValueError(f"option_rule must be one of {OPTION_RULES}, got {option_rule!r}")
        self.option_rule = option_rule
        self.names_quirk = option_names_quirk
        self.search_anywhere = search_anywhere
        self.expert_strict = expert_strict
        rule = TierRule(tier_easy_max_complexity, tier_easy_max_family, tier_hard_min_complexity, tier_hard_min_family)
        self.store: RealCatalogue | GeneratedCatalogue
        self.tasks: RealTaskSet | GeneratedTaskSet
        if data is not None or products_file is not None:
            from gymwire.env_servers.webshop.real_data import RealCatalogue
            from gymwire.env_servers.webshop.real_tasks import RealTaskSet

            self.store = RealCatalogue(
                data,
                products_file=products_file,
                attributes_file=attributes_file,
                human_file=human_file,
                cache_dir=cache_dir,
                human_rule=human_rule,
            )
            self.tasks = RealTaskSet(self.store, rule, test_percent, goals)
            self.source = f"the original WebShop products ({len(self.store)} from {self.store.origin})"
        else:
            self.store = GeneratedCatalogue(CatalogueSpec(int(products), int(seed), float(distractors)), cache_dir)
            self.tasks = GeneratedTaskSet(self.store, rule, test_percent, tasks_per_tier)
            self.source = f"a generated catalogue of {len(self.store)} products (seed {seed})"
        self._catalogue = TaskCatalogue(self.tasks.listed(), resolver=self.tasks.resolve)

    def describe(self) -> EnvDescription:
        return EnvDescription(
            name="webshop",
            version=VERSION,
            description=(
                "Web shopping from text: search a store, compare results, open a product, choose its "
                f"options and buy what the instruction asks for; served over {self.source}. Reward: "
                "share of matched attributes, options and price limit, times a product-type factor."
            ),
            instruction=INSTRUCTION,
            action_grammar=ACTION_GRAMMAR,
            provides_valid_actions=True,
            provides_expert=True,
            default_max_turns=15,
            max_turns_limit=100,
        )

    def catalogue(self) -> TaskCatalogue:
        return self._catalogue

    def start(self, task: Task) -> WebShopEpisode:
        try:
            goal, target = self.tasks.goal(task.id)
        except (AssertionError, KeyError, IndexError) as exc:
            raise UnknownTask(task.id) from exc
        shop = Shop(
            self.store,
            goal,
            option_rule=self.option_rule,
            names_quirk=self.names_quirk,
            search_anywhere=self.search_anywhere,
            price_of=getattr(self.store, "price_of", None),
        )
        return WebShopEpisode(shop, target, self.expert_strict)

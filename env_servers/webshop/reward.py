"""The purchase reward, ported from the original (princeton-nlp/WebShop `engine/goal.py`, as AgentGym
serves it).

    reward = (attribute matches + option matches + [price <= cap]) / (#attributes + #options + 1)
             * type factor

- A goal attribute matches when some product attribute scores above 85 against it (token-set
  ratio), or when it is a substring of the lower-cased title, features or description.
- Option rule `agentgym` (default, what AgentGym's server computes): each goal option value matches
  when some selected value scores above 85 against it, both colour-normalised. Switch
  `option_names_quirk` reproduces AgentGym's synthetic goals exactly: there the goal options were
  passed as (name, value) pairs, so a value that is not itself a colour word is compared as the
  text "name value" (which then also matches a selected "value" alone).
  Option rule `princeton` is the upstream repository's later rule: each *selected* option counts
  once, by exact match for `size`, else fuzzily, else by substring in title/features/description.
- Type factor: 1.0; 0.5 when neither the query, nor two category-path elements, nor more than a
  fifth of the target title's nouns match; 0.1 when under a tenth of those nouns match; 0.0 when
  none does. The original finds nouns with spaCy's tagger; here a noun is any title word that is
  not a stop word, a number or a common modifier (`title_nouns`), which for product titles (brand,
  model and product words) gives nearly the same sets without a language model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from gymwire.env_servers.webshop.goals import Goal
from gymwire.env_servers.webshop.matching import COLOR_WORDS, fuzzy_match, normalize_color
from gymwire.env_servers.webshop.product import Product

OPTION_RULES = ("agentgym", "princeton")
EXACT_MATCH_OPTIONS = ("size",)  # the princeton rule compares these exactly

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = frozenset(
    """
a an and are as at be by for from in into is it its of on or the to with without your you our we this that these
those all any each per plus new pack set count size inch inches oz ounce ounces lb lbs pcs piece pieces x
s t ft mm cm ml
""".split()
)
_MODIFIERS = frozenset(
    """
best great premium quality high low large small medium big mini extra super ultra soft hard heavy light
lightweight portable durable comfortable cute perfect classic modern professional original natural
adjustable compatible multiple various other easy fast quick long short wide narrow thick thin
""".split()
)


def title_nouns(title: str) -> set[str]:
    """The words of a title that name things (the spaCy-free stand-in for NOUN/PROPN tokens)."""
    words = (w.split("'")[0] for w in _WORD.findall(title.lower()))
    return {w for w in words if len(w) > 1 and not w.isdigit() and w not in _STOP and w not in _MODIFIERS}


@dataclass(frozen=True)
class RewardInfo:
    reward: float
    r_type: float
    attribute_matches: int
    option_matches: int
    price_ok: bool
    query_match: bool
    category_match: bool
    title_score: float


def type_factor(bought: Product, goal: Goal) -> tuple[float, bool, bool, float]:
    query_match = bought.query == goal.query
    bought_path = {x.strip() for x in bought.product_category.split("›")}
    goal_path = {x.strip() for x in goal.product_category.split("›")}
    category_match = len(bought_path & goal_path) >= 2
    wanted = title_nouns(goal.name)
    if not wanted:
        title_score = 0.2
    else:
        title_score = len(title_nouns(bought.title) & wanted) / len(wanted)
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return r_type, query_match, category_match, title_score


def _product_text(bought: Product) -> tuple[str, str, str]:
    return bought.title.lower(), " ".join(bought.bullets).lower(), bought.description.lower()


def attribute_matches(bought: Product, goal: Goal) -> int:
    title, bullets, description = _product_text(bought)
    matches = 0
    for wanted in goal.attributes:
        if any(fuzzy_match(have, wanted) for have in bought.attributes):
            matches += 1
        elif wanted in title or wanted in bullets or wanted in description:
            matches += 1
    return matches


def _goal_option_text(name: str, value: str, names_quirk: bool) -> str:
    if not names_quirk or not name:
        return normalize_color(value)
    # AgentGym passed (name, value) tuples: a tuple "contains" a colour word only when the value
    # equals it, and otherwise the fuzzy scorer saw the tuple's text.
    for word in COLOR_WORDS:
        if word == value or word == name:
            return word
    return f"{name} {value}"


def option_matches(
    bought: Product, selected: Mapping[str, str], goal: Goal, rule: str = "agentgym", names_quirk: bool = False
) -> int:
    if rule == "agentgym":
        chosen = [normalize_color(v) for v in selected.values()]
        matches = 0
        for name, value in goal.options:
            wanted = _goal_option_text(name, value, names_quirk)
            if any(fuzzy_match(have, wanted) for have in chosen):
                matches += 1
        return matches
    if rule == "princeton":
        wanted_values = [normalize_color(v) for v in goal.option_values]
        title, bullets, description = _product_text(bought)
        matches = 0
        for name, value in selected.items():
            have = normalize_color(value)
            if name.lower() in EXACT_MATCH_OPTIONS:
                matched = have in wanted_values
            else:
                matched = any(fuzzy_match(w, have) for w in wanted_values)
            if matched or have in title or have in bullets or have in description:
                matches += 1
        return matches
    raise ValueError(f"unknown option rule {rule!r}; known: {', '.join(OPTION_RULES)}")


def score(
    bought: Product,
    selected: Mapping[str, str],
    price: float,
    goal: Goal,
    rule: str = "agentgym",
    names_quirk: bool = False,
) -> RewardInfo:
    """The reward for buying `bought` at `price` with `selected` options (option name -> value)."""
    r_type, query_match, category_match, title_score = type_factor(bought, goal)
    attrs = attribute_matches(bought, goal)
    opts = option_matches(bought, selected, goal, rule, names_quirk)
    price_ok = price <= goal.price_upper
    total = (attrs + opts + int(price_ok)) / (len(goal.attributes) + len(goal.options) + 1)
    return RewardInfo(total * r_type, r_type, attrs, opts, price_ok, query_match, category_match, title_score)

"""WebShop: pages, grammar, reward by hand, goals, the oracle on every tier, splits, determinism,
the original-file loader, the on-disk catalogue, and a conformance run on a real server."""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gymwire.env_servers.conformance import RULES, run_suite
from gymwire.env_servers.sdk import UnknownTask
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.webshop import WebShopEnvironment
from gymwire.env_servers.webshop.environment import extract_action
from gymwire.env_servers.webshop.generator import CatalogueSpec, asin_of, generate, index_of_asin
from gymwire.env_servers.webshop.goals import Goal, price_cap
from gymwire.env_servers.webshop.jsonstream import iter_json_array, iter_json_object
from gymwire.env_servers.webshop.matching import fuzzy_match, normalize_color, token_set_score
from gymwire.env_servers.webshop.product import Product
from gymwire.env_servers.webshop.render import render
from gymwire.env_servers.webshop.reward import score, title_nouns
from gymwire.env_servers.webshop.shop import parse_action
from gymwire.env_servers.webshop.tasks import TIERS
from gymwire.env_servers.webshop.vocabulary import OPTION_SETS, PRODUCT_TYPES
from tests.conftest import json_in_fresh_process

N_PRODUCTS = 500
SEP = " [SEP] "


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("webshop-cache")


@pytest.fixture(scope="module")
def env(cache) -> WebShopEnvironment:
    return WebShopEnvironment(N_PRODUCTS, cache_dir=cache, tasks_per_tier=12)


def start(env: WebShopEnvironment, task_id: str | None = None):
    task = env.catalogue().get(task_id) if task_id else env.catalogue().list()[0]
    episode = env.start(task)
    return episode, episode.reset()


def play_expert(env: WebShopEnvironment, task, limit: int = 15):
    episode = env.start(task)
    episode.reset()
    for turn in range(1, limit + 1):
        action = episode.expert_action()
        assert action is not None, f"expert gave up on {task.id}"
        assert action.startswith("Thought: ") and "\nAction: " in action
        outcome = episode.step(action)
        assert outcome.action_valid, f"{task.id}: {action!r} -> {outcome.observation}"
        if outcome.terminated:
            return outcome, turn
    raise AssertionError(f"expert did not finish {task.id} in {limit} turns")


def to_results(episode, keywords: str = "collection"):  # in every generated description
    out = episode.step(f"Action: search[{keywords}]")
    assert out.action_valid
    return out


# --- pages --------------------------------------------------------------------------------------


def test_start_page_is_exact(env):
    episode, first = start(env)
    assert first == SEP.join(["WebShop", "Instruction:", episode.shop.goal.instruction, "Search"])
    assert first.startswith("WebShop [SEP] Instruction: [SEP] Find me ")


def test_results_pages_paging_and_prev_next(env):
    episode, _ = start(env)
    goal = episode.shop.goal
    text = to_results(episode, goal.query).observation
    head = SEP.join(["Instruction:", goal.instruction, "Back to Search", "Page 1 (Total results: 50)", "Next >"])
    assert text.startswith(head + SEP)
    rest = text[len(head) + len(SEP) :].split(SEP)
    assert len(rest) == 30  # 10 x (ASIN, title, price)
    assert all(re.fullmatch(r"B0[0-9A-Z]{8}", asin) for asin in rest[0::3])
    assert all(re.fullmatch(r"\$\d+\.\d\d", price) for price in rest[2::3])
    assert "< Prev" not in text
    for page in range(2, 6):
        text = episode.step("click[next >]").observation
        assert f"Page {page} (Total results: 50) [SEP] < Prev" in text
        assert ("Next >" in text) == (page < 5)
    assert not episode.step("click[next >]").action_valid  # no Next > on the last page
    assert "Page 4 (Total results: 50)" in episode.step("click[< prev]").observation


def test_item_page_and_sub_pages(env):
    episode, _ = start(env)
    text = to_results(episode, episode.shop.goal.query).observation
    asin = text.split(SEP)[5]
    item = episode.step(f"click[{asin.lower()}]").observation
    product = episode.shop.product(episode.shop.page.item)
    assert product.asin == asin
    expected = ["Instruction:", episode.shop.goal.instruction, "Back to Search", "< Prev"]
    for name, values in product.options.items():
        expected += [name, *values]
    expected += [
        product.title,
        f"Price: {product.price_tag}",
        "Rating: N.A.",
        "Description",
        "Features",
        "Reviews",
        "Buy Now",
    ]
    assert item == SEP.join(expected)
    clickables = episode.shop.clickables()
    assert clickables[:2] == ["back to search", "< prev"] and clickables[-4:] == [
        "description",
        "features",
        "reviews",
        "buy now",
    ]
    features = episode.step("click[Features]").observation
    assert features == SEP.join(
        ["Instruction:", episode.shop.goal.instruction, "Back to Search", "< Prev", *product.bullets]
    )
    assert episode.step("click[< prev]").observation == item  # back to the item, options kept
    description = episode.step("click[description]").observation
    assert description.endswith("< Prev" + SEP + product.description)
    episode.step("click[< prev]")
    assert "Page 1 (Total results: 50)" in episode.step("click[< prev]").observation  # item -> results
    assert episode.step("click[back to search]").observation.startswith("WebShop [SEP] Instruction:")


def test_options_persist_and_buy_ends_the_episode(env):
    task = env.catalogue().list(difficulty="hard")[0]
    episode = env.start(task)
    episode.reset()
    goal, target = env.tasks.goal(task.id)
    product = env.store.product(target)
    episode.step(f"search[{product.title}]")
    assert episode.step(f"click[{product.asin}]").action_valid
    before = episode.shop.text()
    for _, value in goal.options:
        out = episode.step(f"click[{value.upper()}]")  # compared lower-cased
        assert out.action_valid and out.observation == before  # the page text does not mark selections
    assert episode.shop.page.options == dict(goal.options)
    done = episode.step("click[buy now]")
    assert done.terminated and done.success and done.reward == 1.0
    assert done.observation.startswith(
        "Thank you for shopping with us! [SEP] Purchased [SEP] asin [SEP] " + product.asin
    )
    assert done.info["r_type"] == 1.0
    assert not episode.step("click[back to search]").action_valid  # nothing after the end


def test_state_key_follows_the_page_not_the_path(env):
    task = next(t for t in env.catalogue().list(difficulty="hard") if int(t.metadata["options"]) > 0)
    goal, target = env.tasks.goal(task.id)
    product = env.store.product(target)
    value = goal.options[0][1]

    def keys(turns: list[str]) -> list[str]:
        episode = env.start(task)
        episode.reset()
        return [episode.state_key()] + [(episode.step(turn), episode.state_key())[1] for turn in turns]

    search, item = f"search[{product.title}]", f"click[{product.asin}]"
    wander = keys([search, "click[back to search]", search, "click[next >]", "click[< prev]", item])
    direct = keys([f"search[  {product.title.upper()} ]", "dance", item, "click[features]", "click[< prev]"])
    assert wander[0] == wander[2] and wander[1] == wander[3] == wander[5]  # back where it was
    assert direct[1] == wander[1] and direct[1] == direct[2]  # the same results; nothing changed
    assert wander[-1] == direct[3] == direct[-1]  # the same product page, also after reading its features
    assert len({wander[0], wander[1], wander[4], direct[3], direct[4]}) == 5
    chosen = keys([search, item, f"click[{value}]", f"click[{value}]", "click[buy now]"])
    assert chosen[3] == chosen[4] != chosen[2]  # an option chosen (twice) is state, though the page looks the same
    assert chosen[-1] not in chosen[:-1]


def test_buying_without_options_scores_below_one(env):
    task = next(t for t in env.catalogue().list() if int(t.metadata["options"]) > 0)
    goal, target = env.tasks.goal(task.id)
    episode = env.start(task)
    episode.reset()
    episode.step(f"search[{env.store.product(target).title}]")
    episode.step(f"click[{goal.asin}]")
    done = episode.step("click[buy now]")
    n = len(goal.attributes) + len(goal.options) + 1
    assert done.terminated and not done.success
    assert done.reward == pytest.approx((len(goal.attributes) + 1) / n)


# --- grammar and invalid actions ----------------------------------------------------------------


def test_action_parsing():
    assert extract_action("Thought: I need shoes.\nAction: search[red shoes]") == "search[red shoes]"
    assert extract_action("thinking...\naction:  click[Buy Now]  \nmore") == "click[Buy Now]"
    assert extract_action("click[next >]") == "click[next >]"
    assert parse_action("click[Buy Now]") == ("click", "buy now")
    assert parse_action("Search[ Red Shoes ]") == ("search", "red shoes")
    assert parse_action("click[a [b] c]") == ("click", "a [b] c")
    for bad in ("buy now", "click(buy now)", "click[buy now] please", "press[x]", ""):
        assert parse_action(bad) is None


@pytest.mark.parametrize(
    "action",
    [
        "",
        "xyzzy",
        "click[nothing here]",
        "click[search]",
        "search[]",
        "search[   ]",
        "click[buy now]",
        "click[next >]",
        "Action: jump[3]",
    ],
)
def test_invalid_actions_on_start_page_change_nothing(env, action):
    episode, first = start(env)
    out = episode.step(action)
    assert not out.action_valid and out.observation == first and out.reward == 0 and not out.terminated
    assert episode.shop.page.kind == "start"


def test_invalid_actions_elsewhere_change_nothing(env):
    episode, _ = start(env)
    results = to_results(episode).observation
    for action in ("search[other shoes]", "click[buy now]", "click[description]", "click[b000000000]"):
        out = episode.step(action)
        assert not out.action_valid and out.observation == results
    episode.step(f"click[{episode.shop.clickables()[-1]}]")
    item = episode.shop.text()
    for action in ("search[x]", "click[next >]", "click[not an option]"):
        out = episode.step(action)
        assert not out.action_valid and out.observation == item


def test_search_anywhere_switch(cache):
    env = WebShopEnvironment(N_PRODUCTS, cache_dir=cache, tasks_per_tier=2, search_anywhere=True)
    episode, _ = start(env)
    to_results(episode)
    assert episode.step("search[yoga mat]").action_valid


def test_valid_actions_report_the_clickables(env):
    episode, first = start(env)
    assert episode.valid_actions() == ["search[<keywords>]"]
    assert "click[" not in first and "search[" not in first  # the page does not list actions
    to_results(episode)
    actions = episode.valid_actions()
    assert actions[:2] == ["click[back to search]", "click[next >]"]
    assert len(actions) == 12 and all(a.startswith("click[b0") for a in actions[2:])
    for action in actions:  # each reported action is accepted
        clone, _ = start(env)
        to_results(clone)
        assert clone.step(action).action_valid


# --- matching and reward, by hand ---------------------------------------------------------------


def test_fuzzy_rule_matches_thefuzz():
    assert token_set_score("wash machine", "machine wash") == 100  # same token set
    assert token_set_score("machine washable", "machine wash") == 86  # 85.7 rounds up: a match
    assert fuzzy_match("machine washable", "machine wash")
    assert token_set_score("count 6", "count 12") == 83 and not fuzzy_match("count 6", "count 12")
    assert token_set_score("large", "x-large") == 100  # a token subset scores 100
    assert token_set_score("", "black") == 0
    assert normalize_color("navy blue") == "blue" and normalize_color("light blue") == "blue"
    assert normalize_color("standard") == "tan"  # the rule is a substring test, quirks included
    assert normalize_color("xl") == "xl"


def hand_product(**changes) -> Product:
    fields = dict(
        asin="B000000001",
        title="Acme Slim Fit Cotton T-Shirt for Men",
        price=18.5,
        price_tag="$18.50",
        options={"color": ("black", "navy blue"), "size": ("small", "large")},
        attributes=("slim fit", "machine wash", "cotton blend"),
        bullets=("Soft and breathable fabric",),
        description="A classic tee.",
        query="men's t-shirts",
        category="fashion",
        product_category="Clothing, Shoes & Jewelry › Men › Clothing › Shirts › T-Shirts",
    )
    fields.update(changes)
    return Product(**fields)


def hand_goal(**changes) -> Goal:
    fields = dict(
        asin="B000000001",
        instruction="Find me slim fit, machine wash men's t-shirts ...",
        attributes=("slim fit", "machine wash"),
        options=(("color", "blue"), ("size", "large")),
        price_upper=30.0,
        query="men's t-shirts",
        category="fashion",
        product_category="Clothing, Shoes & Jewelry › Men › Clothing › Shirts › T-Shirts",
        name="Acme Slim Fit Cotton T-Shirt for Men",
    )
    fields.update(changes)
    return Goal(**fields)


def test_reward_full_match():
    info = score(hand_product(), {"color": "navy blue", "size": "large"}, 18.5, hand_goal())
    # 2 attributes + 2 options ("navy blue" and "blue" both normalise to "blue") + price = 5 / 5
    assert (info.attribute_matches, info.option_matches, info.price_ok, info.r_type) == (2, 2, True, 1.0)
    assert info.reward == 1.0


def test_reward_partial_cases():
    goal = hand_goal()
    # one attribute missing everywhere: (1 + 2 + 1) / 5
    p = hand_product(attributes=("slim fit", "cotton blend"))
    assert score(p, {"color": "navy blue", "size": "large"}, 18.5, goal).reward == pytest.approx(4 / 5)
    # found in the description instead of the attribute list: still a match
    p = hand_product(attributes=("slim fit",), description="Easy care: machine wash cold.")
    assert score(p, {"color": "black", "size": "large"}, 18.5, goal).reward == pytest.approx(4 / 5)
    # fuzzy attribute ("wash machine" has the goal's tokens) and over the cap: (2 + 2 + 0) / 5
    p = hand_product(attributes=("slim fit", "wash machine"))
    assert score(p, {"color": "navy blue", "size": "large"}, 30.01, goal).reward == pytest.approx(4 / 5)
    # nothing selected: (2 + 0 + 1) / 5
    assert score(hand_product(), {}, 18.5, goal).reward == pytest.approx(3 / 5)
    # "x-large" selected for "large": token subset, counts as a match (the original's rule)
    g = hand_goal(options=(("size", "large"),))
    assert score(hand_product(), {"size": "x-large"}, 18.5, g).option_matches == 1
    assert score(hand_product(), {"size": "small"}, 18.5, g).option_matches == 0


def test_type_factor_cases():
    goal = hand_goal()
    selected = {"color": "navy blue", "size": "large"}
    # other query, other category, no shared title noun: 0
    other = hand_product(title="Zen Yoga Mat", query="yoga mat", product_category="Sports & Outdoors › Yoga › Mats")
    info = score(other, selected, 18.5, goal)
    assert (info.r_type, info.title_score, info.reward) == (0.0, 0.0, 0.0)
    # goal nouns {acme, slim, fit, cotton, shirt, men}: 1 of 6 shared (0.167), no query/category match: 0.5
    half = hand_product(title="Zen Cotton Yoga Mat", query="yoga mat", product_category="Sports & Outdoors › Yoga")
    assert title_nouns(goal.name) == {"acme", "slim", "fit", "cotton", "shirt", "men"}
    info = score(half, selected, 18.5, goal)
    assert info.title_score == pytest.approx(1 / 6) and info.r_type == 0.5
    assert info.reward == pytest.approx(0.5 * 5 / 5)
    # same query rescues the factor to 1 when more than a tenth of the nouns match
    assert score(hand_product(title="Zen Cotton Yoga Mat"), selected, 18.5, goal).r_type == 1.0
    # under a tenth: 0.1 even with the same query
    many = hand_goal(name="Acme Slim Fit Cotton Crew Neck Tee Shirt Men Summer Casual Basic")
    assert score(hand_product(title="Acme Hoodie"), selected, 18.5, many).r_type == 0.1


def test_option_rules_and_quirk():
    goal = hand_goal(options=(("size", "x-large"), ("color", "black")))
    chosen = {"size": "large", "color": "black"}
    # agentgym: "large" vs "x-large" scores 100 (subset), so both match
    assert score(hand_product(), chosen, 18.5, goal).option_matches == 2
    # princeton: size is compared exactly
    assert score(hand_product(), chosen, 18.5, goal, rule="princeton").option_matches == 1
    # AgentGym's (name, value) quirk: "size x-large" vs "large" matches, a colour word stays a colour
    assert score(hand_product(), chosen, 18.5, goal, names_quirk=True).option_matches == 2
    g = hand_goal(options=(("color", "navy"),))
    assert score(hand_product(), {"color": "blue"}, 18.5, g, names_quirk=True).option_matches == 0


def test_price_cap_rule():
    caps = Counter(price_cap(31.0, random.Random(s)) for s in range(300))
    assert set(caps) == {50.0, 60.0, 70.0}  # tiers 40, 50, 60, 70: the larger of two samples
    assert caps[70.0] > caps[60.0] > caps[50.0]  # 3 : 2 : 1 pairs
    assert price_cap(975.0, random.Random(0)) == 990.0
    assert price_cap(985.0, random.Random(0)) is None and price_cap(2000.0, random.Random(0)) is None
    assert price_cap(10.0, random.Random(1)) in (30.0, 40.0, 50.0)  # tiers strictly above the price


# --- goals, vocabulary and generation -----------------------------------------------------------


_GOAL = re.compile(
    r"Find me (?:[a-z0-9 ,]+ )?(?P<phrase>[a-z0-9' -]+?)(?: with [a-z0-9 ,]+)?(?: for [a-z0-9 ,]+)?"
    r"(?P<options> with [a-z ]+: [a-z0-9 .]+(?:, and [a-z ]+: [a-z0-9 .]+)*)?"
    r"(?P<price>, and price lower than \d+\.00 dollars)?"
)


def test_goal_template(env):
    for task in env.catalogue().list():
        goal, target = env.tasks.goal(task.id)
        product = env.store.product(target)
        assert _GOAL.fullmatch(goal.instruction), goal.instruction
        assert goal.instruction.startswith("Find me ") and product.query in goal.instruction
        names = [n for n, _ in goal.options]
        assert names == sorted(names) and all(v in product.options[n] for n, v in goal.options)
        if goal.price_upper < 1e6:
            assert goal.instruction.endswith(f", and price lower than {goal.price_upper:.2f} dollars")
            assert product.price < goal.price_upper <= product.price + 40
        assert set(goal.attributes) <= set(product.attributes)


def test_vocabulary_lets_the_reward_tell_products_apart():
    for ptype in PRODUCT_TYPES:
        words = (ptype.phrase + " " + " ".join(ptype.nouns)).lower()
        for a, b in itertools.permutations(ptype.attributes, 2):
            assert a not in b and token_set_score(a, b) <= 85, (ptype.key, a, b)
        assert not any(a in words for a in ptype.attributes), ptype.key
    for key, (_, values) in OPTION_SETS.items():
        normal = [normalize_color(v) for v in values]
        for a, b in itertools.permutations(normal, 2):
            assert token_set_score(a, b) <= 85, (key, a, b)


def test_generated_text_mentions_only_own_attributes():
    rows = generate(CatalogueSpec(3000, seed=5))
    for i in range(0, 3000, 3):
        product = render(rows[i], i, 5)
        text = " ".join((product.title, *product.bullets, product.description)).lower()
        for attribute in PRODUCT_TYPES[int(rows[i]["type"])].attributes:
            assert (attribute in text) == (attribute in product.attributes), (i, attribute)


def test_generation_is_seeded_and_prefix_stable():
    small, large = generate(CatalogueSpec(700, seed=3)), generate(CatalogueSpec(70_000, seed=3))
    cut = int(np.argmax(small["family"] == small["family"][-1]))  # the last family may be cut short
    assert (small[:cut] == large[:cut]).all()
    assert not (generate(CatalogueSpec(700, seed=4))[:cut] == small[:cut]).all()
    assert len({asin_of(i, 3) for i in range(20_000)}) == 20_000
    assert all(index_of_asin(asin_of(i, 3), 3) == i for i in (0, 1, 699, 69_999))
    assert index_of_asin("not-an-asin", 3) is None


# --- oracle, tiers, splits, ids -------------------------------------------------------------------


def test_oracle_reaches_reward_one_on_every_tier(env):
    counts = Counter()
    for task in env.catalogue().list():
        outcome, turns = play_expert(env, task)
        assert outcome.success and outcome.reward == 1.0, (task.id, outcome.observation)
        assert turns <= 15
        counts[task.difficulty] += 1
    assert set(counts) == set(TIERS) and min(counts.values()) >= 12


def test_strict_oracle_buys_the_target(cache):
    env = WebShopEnvironment(N_PRODUCTS, cache_dir=cache, tasks_per_tier=3, expert_strict=True)
    for task in env.catalogue().list():
        outcome, _ = play_expert(env, task)
        assert outcome.success and outcome.info["asin"] == task.metadata["asin"]


def test_oracle_recovers_after_wandering(env):
    task = env.catalogue().list(difficulty="medium")[0]
    episode = env.start(task)
    episode.reset()
    episode.step("search[completely unrelated words]")
    episode.step(f"click[{episode.shop.clickables()[-1]}]")
    episode.step("click[reviews]")
    for _ in range(15):
        out = episode.step(episode.expert_action())
        if out.terminated:
            break
    assert out.success


def test_tiers_follow_complexity_and_family(env):
    for task in env.catalogue().list():
        complexity, family = int(task.metadata["complexity"]), int(task.metadata["distractors"]) + 1
        assert complexity == int(task.metadata["attributes"]) + int(task.metadata["options"])
        expected = (
            "hard" if complexity >= 5 or family >= 10 else ("easy" if complexity <= 3 and family <= 4 else "medium")
        )
        assert task.difficulty == expected


def test_splits_are_disjoint_by_family(env):
    tasks = env.catalogue().list()
    by_split = {s: {t.metadata["family"] for t in tasks if t.split == s} for s in ("train", "test")}
    assert by_split["train"] and by_split["test"] and not by_split["train"] & by_split["test"]
    # every product of one family lands in one split, listed or resolved
    rows = env.store.rows
    for family in list(by_split["test"])[:5] + list(by_split["train"])[:5]:
        members = np.nonzero(rows["family"] == int(family))[0]
        ids = [f"gen:{env.store.product(int(i)).asin}:7" for i in members]
        assert len({env.catalogue().get(i).split for i in ids}) == 1


def test_task_ids_resolve_and_reject(env):
    task = env.catalogue().list()[0]
    asin = task.metadata["asin"]
    other = env.catalogue().get(f"gen:{asin.lower()}:3")
    assert other.id == f"gen:{asin}:3" and other.difficulty == task.difficulty
    first_a = env.start(env.catalogue().get(f"gen:{asin}:3")).reset()
    assert first_a == env.start(other).reset()  # same id, same first page
    for bad in ("gen:B0ZZZZZZZZ:0", f"gen:{asin}:1000", "gen:xyz", "synthetic-0", f"gen:{asin}"):
        with pytest.raises(UnknownTask):
            env.catalogue().get(bad)


def test_description(env):
    d = env.describe()
    assert (d.name, d.provides_valid_actions, d.provides_expert, d.default_max_turns) == ("webshop", True, True, 15)
    for fact in ("search[<keywords>]", "click[<value>]", "[SEP]", "click[buy now]", "Action:"):
        assert fact in d.instruction


# --- the catalogue on disk ----------------------------------------------------------------------


def test_catalogue_is_built_once_and_reused(cache, env):
    folder = env.store.folder
    meta = (folder / "meta.json").read_text()
    again = WebShopEnvironment(N_PRODUCTS, cache_dir=cache, tasks_per_tier=12)
    assert (folder / "meta.json").read_text() == meta
    assert [t.id for t in again.catalogue().list()] == [t.id for t in env.catalogue().list()]
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]
    assert (folder / "rows.npy").stat().st_size < 100 * N_PRODUCTS
    assert isinstance(env.store.rows, np.memmap)


_CHILD = """
import json, sys
from gymwire.env_servers.webshop import WebShopEnvironment
env = WebShopEnvironment(500, cache_dir=sys.argv[1], tasks_per_tier=3)
out = []
for task in env.catalogue().list():
    ep = env.start(task)
    trace = [ep.reset()]
    while True:
        o = ep.step(ep.expert_action())
        trace.append(o.observation)
        if o.terminated:
            break
    out.append([task.id, task.split, task.difficulty, trace])
print(json.dumps(out))
"""


def test_determinism_across_processes(tmp_path):
    # separate caches: each process builds its own catalogue and index
    runs = [
        json_in_fresh_process(_CHILD, str(tmp_path / name), hash_seed=seed) for name, seed in (("a", "1"), ("b", "2"))
    ]
    assert runs[0] == runs[1] and len(runs[0]) == 18


# --- the original files ---------------------------------------------------------------------------


def write_original_files(folder: Path) -> dict:
    """Small files in the original formats, with the quirks the loader must handle."""
    products, attributes, human = [], {}, {}
    colors = ["Black", "Navy/Blue", "Red"]
    for i in range(24):
        asin = f"B0ORIG{i:04d}"
        options = {"Color": [{"value": c, "image": None} for c in colors[: 1 + i % 3]]}
        if i % 2:
            options["Size"] = [{"value": s, "image": "x.jpg"} for s in ("Small", "X-Large")]
        pricing = [f"${10 + i}.99", f"${10 + i}.00 - ${20 + i}.50", "", None][i % 4]
        products.append(
            {
                "asin": asin,
                "name": f"Acme Cotton Shirt Model {i} for Men",
                "full_description": f"Shirt number {i}.",
                "small_description": ["Machine wash", "Cotton blend"] if i % 3 else "Hand wash only",
                "pricing": pricing,
                "images": ["x.jpg"],
                "query": " Men's Shirts ",
                "category": "fashion",
                "product_category": "Clothing, Shoes & Jewelry › Men › Clothing › Shirts",
                "customization_options": None if i == 5 else options,
            }
        )
        attributes[asin] = {"attributes": ["machine wash", "cotton blend"]}
        if i % 2 == 0:
            attributes[asin].update(
                instruction="Find me machine wash men's shirts with cotton blend",
                instruction_attributes=["machine wash", "cotton blend"],
            )
        human[asin] = [
            {
                "asin": asin,
                "instruction": f"i need a machine wash shirt number {i}.",
                "instruction_attributes": ["machine wash"] if i % 7 else [],
                "instruction_options": ["black"],
                "worker_id": "w",
                "assignment_id": "a",
            }
        ]
    products += [{"asin": "nan", "name": "skipped"}, {"asin": "B0TOOLONG000", "name": "skipped"}, dict(products[0])]
    (folder / "items_shuffle_1000.json").write_text(json.dumps(products))
    (folder / "items_ins_v2_1000.json").write_text(json.dumps(attributes, indent=1))
    (folder / "items_human_ins.json").write_text(json.dumps(human))
    return {"products": products[:24], "attributes": attributes, "human": human}


def expected_synthetic(files: dict, prices: dict[str, float]) -> list[tuple[str, str]]:
    """AgentGym's synthetic goals, derived independently: (asin, instruction) after the shuffle."""
    rng, goals = random.Random(233), []
    for p in files["products"]:
        info = files["attributes"][p["asin"]]
        if "instruction" not in info:
            continue
        above = [10.0 * k for k in range(1, 100) if 10.0 * k > prices[p["asin"]]][:4]
        _, cap = sorted(rng.sample(above, 2))
        opts = {
            k.lower(): [c["value"].replace("/", " | ").lower() for c in v]
            for k, v in (p["customization_options"] or {}).items()
        }
        names = sorted(opts)
        for combo in itertools.product(*(opts[n] for n in names)):
            text = ", and ".join(f"{n}: {v}" for n, v in zip(names, combo, strict=True))
            goals.append(
                (
                    p["asin"],
                    info["instruction"]
                    + (" with " + text if text else "")
                    + f", and price lower than {cap:.2f} dollars",
                )
            )
    random.Random(233).shuffle(goals)
    return goals


def test_loader_on_original_format_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    files = write_original_files(data)
    env = WebShopEnvironment(data=data, cache_dir=tmp_path / "cache", goals="both")
    store = env.store
    assert len(store) == 24  # "nan", an 11-character ASIN and a repeat are skipped
    tags = [store.product(i).price_tag for i in range(4)]
    assert tags == ["$10.99", "$11.0 to $21.5", "$100.0", "$100.0"]
    shirt = store.product(store.index_of("b0orig0011"))
    assert shirt.options == {"color": ("black", "navy | blue", "red"), "size": ("small", "x-large")}
    assert shirt.query == "men's shirts" and shirt.bullets == ("Machine wash", "Cotton blend")
    assert store.product(3).bullets == ("Hand wash only",)
    assert store.product(5).options == {}
    prices = {store.product(i).asin: store.product(i).price for i in range(24)}
    assert 11.0 <= prices["B0ORIG0001"] <= 21.5
    expected = expected_synthetic(files, prices)
    assert store.goal_count("synthetic") == len(expected)
    for i, (asin, instruction) in enumerate(expected):
        goal, _ = store.goal("synthetic", i)
        assert (goal.asin, goal.instruction) == (asin, instruction)
    # human goals: instructions with attributes, shuffled with seed 233, all in test (positions < 500)
    human_asins = [p["asin"] for p in files["products"] if files["human"][p["asin"]][0]["instruction_attributes"]]
    random.Random(233).shuffle(human_asins)
    assert [store.goal("human", i)[0].asin for i in range(len(human_asins))] == human_asins
    task = env.catalogue().get("human-0")
    assert task.split == "test" and env.catalogue().get("synthetic-0").id == "synthetic-0"
    with pytest.raises(UnknownTask):
        env.catalogue().get(f"synthetic-{len(expected)}")
    # the oracle solves the synthetic goals it is given
    for task in env.catalogue().list()[:6]:
        outcome, _ = play_expert(env, task)
        assert outcome.success, (task.id, outcome.observation)
    # the page shows the original's text forms
    episode = env.start(env.catalogue().get("synthetic-0"))
    assert episode.reset().startswith("WebShop [SEP] Instruction: [SEP] Find me machine wash men's shirts")


def test_human_goal_rule_agentgym(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    files = write_original_files(data)
    env = WebShopEnvironment(data=data, cache_dir=tmp_path / "cache", goals="human", human_rule="agentgym")
    with_attrs = sum(1 for h in files["human"].values() if h[0]["instruction_attributes"])
    assert env.store.goal_count("human") == 4 * with_attrs  # one goal per tier of the four above the price


def test_streaming_json_reader(tmp_path):
    items = [{"a": i, "s": "x" * (i * 37 % 5000), "f": 1.5e3, "u": '\u00e9\\"]'} for i in range(2000)]
    (tmp_path / "a.json").write_text(json.dumps(items))
    assert list(iter_json_array(tmp_path / "a.json")) == items
    obj = {f"k{i}": [i, {"z": "}" * i}] for i in range(500)}
    (tmp_path / "o.json").write_text(json.dumps(obj, indent=2))
    assert list(iter_json_object(tmp_path / "o.json")) == list(obj.items())
    (tmp_path / "n.json").write_text("[1, 2, 30000]")
    assert list(iter_json_array(tmp_path / "n.json")) == [1, 2, 30000]
    (tmp_path / "bad.json").write_text('{"a": 1}')
    with pytest.raises(ValueError):
        list(iter_json_array(tmp_path / "bad.json"))


# --- a real server ----------------------------------------------------------------------------------


def test_conformance_on_a_real_server(cache):
    with BackgroundServer(lambda: WebShopEnvironment(N_PRODUCTS, cache_dir=cache, tasks_per_tier=12)) as server:
        results = run_suite(server.address)
    assert len(results) == len(RULES)
    failed = [(r.name, r.detail) for r in results if r.status == "fail"]
    assert not failed

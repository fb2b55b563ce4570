"""Fuzzy text matching and colour normalisation, as the original reward uses them.

The original scores with `thefuzz.fuzz.token_set_ratio`: both strings are reduced to ASCII, every
non-alphanumeric character becomes a space, text is lower-cased, and the score is rounded to an
integer. A pair "matches" when that integer is above 85. `rapidfuzz` computes the same ratio; the
processing and rounding are reproduced here so borderline pairs (85.4 vs 85.7) agree.

Two consequences of token_set_ratio that shape the generated catalogue (see vocabulary.py): a value
whose tokens are a subset of another's scores 100 ("large" vs "x-large"), and short values that
share a long unit string score above 85 ("4 ounce" vs "8 ounce").

Option values are compared after colour normalisation: the first colour word (in list order)
contained in the value replaces it, so "navy blue" and "light blue" both become "blue". The word
list is ours; the rule (first listed word that is a substring) is the original's.
"""

from __future__ import annotations

from functools import lru_cache

from rapidfuzz import fuzz, utils

MATCH_THRESHOLD = 85

# Alphabetical, like the original's list; the first one found inside a value wins.
COLOR_WORDS: tuple[str, ...] = (
    "almond",
    "amber",
    "apricot",
    "aqua",
    "azure",
    "beige",
    "black",
    "blue",
    "blush",
    "bronze",
    "brown",
    "burgundy",
    "camel",
    "camo",
    "caramel",
    "champagne",
    "charcoal",
    "cherry",
    "chocolate",
    "copper",
    "coral",
    "cream",
    "crimson",
    "denim",
    "emerald",
    "espresso",
    "fuchsia",
    "gold",
    "graphite",
    "gray",
    "green",
    "grey",
    "indigo",
    "ivory",
    "khaki",
    "lavender",
    "lemon",
    "lilac",
    "lime",
    "magenta",
    "maroon",
    "mauve",
    "mint",
    "mocha",
    "multicolor",
    "mustard",
    "natural",
    "navy",
    "nude",
    "olive",
    "orange",
    "peach",
    "pewter",
    "pink",
    "plum",
    "purple",
    "red",
    "rose",
    "ruby",
    "rust",
    "sage",
    "sand",
    "scarlet",
    "silver",
    "slate",
    "tan",
    "taupe",
    "teal",
    "turquoise",
    "violet",
    "walnut",
    "white",
    "wine",
    "yellow",
)


def normalize_color(value: str) -> str:
    """The first colour word contained in `value`, else `value` unchanged."""
    for word in COLOR_WORDS:
        if word in value:
            return word
    return value


@lru_cache(maxsize=65536)
def _process(text: str) -> str:
    return utils.default_process(text.encode("ascii", "ignore").decode("ascii"))


def token_set_score(a: str, b: str) -> int:
    """thefuzz's `token_set_ratio(a, b)`: 0-100, an integer."""
    pa, pb = _process(a), _process(b)
    if not pa or not pb:
        return 0
    return int(round(fuzz.token_set_ratio(pa, pb, processor=None)))


def fuzzy_match(a: str, b: str) -> bool:
    return token_set_score(a, b) > MATCH_THRESHOLD

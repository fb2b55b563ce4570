"""Invented, collision-free names for the knowledge base, computed from an index without any table.

A name space is a list of patterns (a format string over component lists); the last component of
every pattern is a list of *variant pairs* (`holm`/`hold`, `Garden`/`Gardens`). Index `i` of a type
maps to a name through a seeded affine bijection over the pattern space, and `i` and `i ^ 1` share
every component but the variant: they are *twins*, the near-namesake distractors (`Aldric Venholm`
and `Aldric Venhold`) that make a reader check which passage it is reading. Because the map is a
bijection, names within a type never repeat; types use disjoint suffixes or words, so names never
repeat across types either (a test enumerates a default knowledge base to check it).

The syllables are invented so that a model cannot know any fact about these names.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

ONSETS = (
    "b",
    "br",
    "c",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "st",
    "t",
    "th",
    "tr",
    "v",
    "w",
    "z",
    "ch",
    "sh",
    "bl",
    "cr",
    "fl",
    "gl",
)
VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "ia")
CODAS = ("", "n", "r", "l", "s", "th", "nd", "rn", "lm", "rd", "v", "x")
GIVEN_ENDINGS = ("a", "o", "in", "an", "el", "ric", "wen", "ith", "ara", "ian", "ys", "ette")


def _cap(word: str) -> str:
    return word[:1].upper() + word[1:]


def _syllables() -> list[str]:
    return [o + v + c for o, v, c in product(ONSETS, VOWELS, CODAS)]


ROOTS: tuple[str, ...] = tuple(_cap(s) for s in _syllables())  # 3,132 one-syllable roots
GIVEN_NAMES: tuple[str, ...] = tuple(
    sorted(
        random.Random("searchqa-given-names").sample(
            [_cap(o + v + e) for o, v, e in product(ONSETS, VOWELS, GIVEN_ENDINGS)], 300
        )
    )
)

SURNAME_SUFFIXES = (
    ("holm", "hold"),
    ("ard", "art"),
    ("wick", "wich"),
    ("ley", "ly"),
    ("ton", "ten"),
    ("more", "mere"),
    ("by", "bey"),
    ("stad", "stead"),
    ("win", "wyn"),
    ("ford", "forth"),
)
CITY_PREFIXES = ("", "Port ", "New ", "Upper ", "Lower ", "East ", "West ", "North ", "South ")
CITY_SUFFIXES = (
    ("mouth", "muth"),
    ("bridge", "brigg"),
    ("field", "feld"),
    ("burg", "borg"),
    ("dale", "dal"),
    ("haven", "hafen"),
    ("minster", "minter"),
    ("crest", "crast"),
)
COUNTRY_SUFFIXES = (("ovia", "ovea"), ("enland", "enlund"), ("aria", "area"), ("istan", "istein"), ("onia", "onea"))
COUNTRY_FORMS = ("Republic of", "Kingdom of", "Federation of", "Grand Duchy of", "Commonwealth of")

# Organisation words by kind; the pair is the twin variant.
ORG_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "university": (("University", "College"), ("Institute", "Academy")),
    "company": (
        ("Instruments", "Industries"),
        ("Motors", "Machines"),
        ("Foods", "Farms"),
        ("Textiles", "Tailors"),
        ("Shipping", "Shipyards"),
    ),
    "publisher": (("Press", "Publishing"), ("Books", "Editions")),
    "studio": (("Pictures", "Studios"), ("Films", "Features")),
    "label": (("Records", "Recordings"),),
}
ADJECTIVES = (
    "Silent",
    "Hollow",
    "Crimson",
    "Distant",
    "Broken",
    "Golden",
    "Hidden",
    "Iron",
    "Last",
    "Lonely",
    "Northern",
    "Pale",
    "Quiet",
    "Restless",
    "Salt",
    "Scarlet",
    "Secret",
    "Shattered",
    "Silver",
    "Sleeping",
    "Stone",
    "Summer",
    "Sunken",
    "Tender",
    "Twelfth",
    "Wandering",
    "Winter",
    "Amber",
    "Bitter",
    "Burning",
    "Copper",
    "Drowned",
    "Emerald",
    "Fading",
    "Forgotten",
    "Gentle",
    "Glass",
    "Howling",
    "Ivory",
    "Long",
    "Midnight",
    "Narrow",
    "Obsidian",
    "Painted",
    "Patient",
    "Red",
    "Rusted",
    "Seventh",
    "Small",
    "Velvet",
)
NOUN_PAIRS = (
    ("Garden", "Gardens"),
    ("Lantern", "Lanterns"),
    ("Orchard", "Orchards"),
    ("River", "Rivers"),
    ("Mirror", "Mirrors"),
    ("Tower", "Towers"),
    ("Harbour", "Harbours"),
    ("Letter", "Letters"),
    ("Bell", "Bells"),
    ("Crown", "Crowns"),
    ("Window", "Windows"),
    ("Bridge", "Bridges"),
    ("Feather", "Feathers"),
    ("Island", "Islands"),
    ("Mountain", "Mountains"),
    ("Road", "Roads"),
    ("Shadow", "Shadows"),
    ("Song", "Songs"),
    ("Star", "Stars"),
    ("Voyage", "Voyages"),
    ("Winter", "Winters"),
    ("Wolf", "Wolves"),
    ("Clock", "Clocks"),
    ("Map", "Maps"),
    ("Sister", "Sisters"),
    ("Door", "Doors"),
    ("Field", "Fields"),
    ("Ship", "Ships"),
    ("Tide", "Tides"),
    ("Veil", "Veils"),
)


@dataclass(frozen=True)
class Pattern:
    """`fmt` over components; the last component holds (variant 0, variant 1) pairs."""

    fmt: str
    components: tuple[Sequence, ...]

    @property
    def groups(self) -> int:
        """Names in this pattern, counting each twin pair once."""
        return math.prod(len(c) for c in self.components)

    def render(self, group: int, variant: int) -> tuple[str, tuple]:
        parts = []
        for comp in reversed(self.components):
            group, digit = divmod(group, len(comp))
            parts.append(comp[digit])
        parts.reverse()
        parts[-1] = parts[-1][variant]
        return self.fmt.format(*parts), tuple(parts)


class NameSpace:
    """Names of one entity type: `name(i)` for 0 <= i < capacity, distinct, twins at i and i ^ 1."""

    def __init__(self, label: str, patterns: Sequence[Pattern], seed: int):
        self.label = label
        self.patterns = tuple(patterns)
        self._starts = []
        total = 0
        for p in self.patterns:
            self._starts.append(total)
            total += p.groups
        self.groups = total
        rng = random.Random(f"searchqa-names:{label}:{seed}")
        multiplier = rng.randrange(total // 3, 2 * total // 3) | 1
        while math.gcd(multiplier, total) != 1:
            multiplier += 2
        self._mul, self._add = multiplier, rng.randrange(total)

    @property
    def capacity(self) -> int:
        return 2 * self.groups

    def name(self, index: int) -> str:
        return self.parts(index)[0]

    def parts(self, index: int) -> tuple[str, int, tuple]:
        """(name, pattern number, the chosen components) of entity `index`."""
        if not 0 <= index < self.capacity:
            raise IndexError(f"{self.label} name {index} outside 0..{self.capacity - 1}")
        group = (self._mul * (index >> 1) + self._add) % self.groups
        number = bisect_right(self._starts, group) - 1
        name, parts = self.patterns[number].render(group - self._starts[number], index & 1)
        return name, number, parts


def person_names(seed: int) -> NameSpace:
    return NameSpace("person", [Pattern("{} {}{}", (GIVEN_NAMES, ROOTS, SURNAME_SUFFIXES))], seed)


def city_names(seed: int) -> NameSpace:
    return NameSpace("city", [Pattern("{}{}{}", (CITY_PREFIXES, ROOTS, CITY_SUFFIXES))], seed)


def country_names(seed: int) -> NameSpace:
    return NameSpace("country", [Pattern("{}{}", (ROOTS, COUNTRY_SUFFIXES))], seed)


def organisation_names(seed: int) -> NameSpace:
    """One pattern per kind, so the kind follows from the name: `Venholm Press` is a publisher."""
    surnames = [r + s for r, pair in product(ROOTS, SURNAME_SUFFIXES) for s in pair]
    return NameSpace("organisation", [Pattern("{} {}", (surnames, words)) for words in ORG_WORDS.values()], seed)


ORG_KINDS: tuple[str, ...] = tuple(ORG_WORDS)


def work_names(seed: int) -> NameSpace:
    return NameSpace("work", [Pattern("The {0} {2} of {1}", (ADJECTIVES, ROOTS, NOUN_PAIRS))], seed)

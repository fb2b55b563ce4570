"""A seeded knowledge graph of fictional entities, computed entity by entity with no stored tables.

Every fact of entity `k` is a pure function of (seed, k): its name comes from `names`, its links
and attributes from a `random.Random` seeded with (seed, k). Nothing is held in memory, so a
knowledge base of a million entities costs nothing until a passage or a question asks for an
entity. One entity = one passage; entity ids are passage (document) ids.

Entity types and their typed links (all functional, so every question has one answer):

    country       capital -> city
    city          located_in -> country, twinned_with -> city (a distractor mention)
    organisation  founded_by -> person, headquartered_in -> city
    work          created_by -> person, published_by -> organisation, set_in -> city (distractor)
    person        born_in -> city, educated_at -> organisation (a university), lives_in -> city (distractor)

Attributes: years (born, founded, published), populations, and flavour for the passages. Years are
kept consistent (a founder is born before the founding, an author before the book).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from gymwire.env_servers.searchqa import names as nm

TYPES = ("country", "city", "organisation", "work", "person")
MIN_PASSAGES = 60
WORK_KINDS = ("novel", "film", "album")
WORK_SINCE = {"novel": 0, "film": 1905, "album": 1925}  # no films before cinema, no albums before records
WORK_WEIGHTS = {"novel": 5, "film": 3, "album": 2}
ORG_FOUNDED = {
    "university": (1740, 1950),
    "company": (1760, 2015),
    "publisher": (1750, 2015),
    "studio": (1905, 2015),
    "label": (1925, 2015),
}
WORK_PUBLISHER_KIND = {"novel": "publisher", "film": "studio", "album": "label"}


@dataclass(frozen=True)
class Entity:
    id: int  # also the passage (document) id
    type: str  # one of TYPES
    kind: str  # subtype: organisation kind, work kind; else the type
    name: str
    aliases: tuple[str, ...]  # every accepted answer form, the name first
    links: dict[str, int] = field(default_factory=dict)  # relation -> entity id
    attrs: dict[str, object] = field(default_factory=dict)
    twin: int | None = None  # the near-namesake entity, when it exists


@dataclass(frozen=True)
class Layout:
    """How many entities of each type, in id order (countries first, persons last)."""

    countries: int
    cities: int
    organisations: int
    works: int
    persons: int

    @classmethod
    def for_size(cls, passages: int) -> Layout:
        if passages < MIN_PASSAGES:
            raise ValueError(f"a generated knowledge base needs at least {MIN_PASSAGES} passages, got {passages}")
        countries = min(max(4, passages // 40), nm.country_names(0).capacity)
        cities = max(countries + 4, round(passages * 0.17))
        organisations = round(passages * 0.15)
        works = round(passages * 0.20)
        persons = passages - countries - cities - organisations - works
        layout = cls(countries, cities, organisations, works, persons)
        for kind, count in zip(TYPES, layout.counts(), strict=True):
            capacity = _NAME_SPACES[kind](0).capacity
            if count > capacity:
                raise ValueError(f"{passages} passages need {count} {kind} names; at most {capacity} exist")
        return layout

    def counts(self) -> tuple[int, ...]:
        return (self.countries, self.cities, self.organisations, self.works, self.persons)

    @property
    def total(self) -> int:
        return sum(self.counts())

    def starts(self) -> dict[str, int]:
        out, start = {}, 0
        for kind, count in zip(TYPES, self.counts(), strict=True):
            out[kind] = start
            start += count
        return out


_NAME_SPACES = {
    "country": nm.country_names,
    "city": nm.city_names,
    "organisation": nm.organisation_names,
    "work": nm.work_names,
    "person": nm.person_names,
}

OCCUPATIONS = (
    "novelist",
    "engineer",
    "painter",
    "composer",
    "physician",
    "architect",
    "merchant",
    "film director",
    "botanist",
    "cartographer",
    "poet",
    "historian",
    "chemist",
    "sculptor",
    "astronomer",
    "diplomat",
    "photographer",
    "economist",
)
KNOWN_FOR = (
    "work on tidal engines",
    "essays on rural life",
    "a survey of coastal birds",
    "designs for river locks",
    "portraits of dock workers",
    "a theory of trade winds",
    "studies of old ballads",
    "reforms of the postal service",
    "maps of the inland marshes",
    "a method for preserving fruit",
    "lectures on glassmaking",
    "a history of the salt roads",
    "experiments with lamp oils",
    "restoration of chapel organs",
    "a catalogue of southern stars",
    "public gardens and fountains",
)
CITY_FEATURES = (
    "its covered markets",
    "a harbour of painted boats",
    "clock towers",
    "an annual lantern festival",
    "terraced vineyards",
    "a cathedral of grey stone",
    "its textile mills",
    "narrow canals",
    "a university quarter",
    "hot springs",
    "a ruined fortress",
    "its spring horse fair",
    "copper mines in the hills",
    "a long sea wall",
    "orchards of late pears",
    "a famous puppet theatre",
)
REGIONS = (
    "the Amber Coast",
    "the Northern Reach",
    "the Salt Plains",
    "the Veiled Archipelago",
    "the High Moors",
    "the Eastern Marches",
    "the Lantern Isles",
    "the Cinder Steppe",
    "the Green Basin",
    "the Frost Shelf",
)
CURRENCIES = ("crown", "mark", "florin", "thaler", "shilling", "ducat", "guilder", "rand", "sol", "talent")
LANGUAGE_ENDINGS = ("ic", "ish", "ian", "ese")
GENRES = {
    "novel": ("mystery", "historical", "comic", "adventure", "romance", "gothic"),
    "film": ("drama", "thriller", "comedy", "documentary", "western", "musical"),
    "album": ("folk", "jazz", "choral", "electronic", "chamber", "rock"),
}
PRODUCTS = {
    "university": ("law and medicine", "engineering", "music and the arts", "agriculture", "navigation"),
    "company": ("precision tools", "river barges", "tinned fish", "wool cloth", "steam pumps", "clocks"),
    "publisher": ("poetry", "school books", "travel guides", "translated novels", "maps"),
    "studio": ("silent comedies", "costume dramas", "nature films", "animated shorts"),
    "label": ("folk recordings", "brass bands", "jazz singles", "choral music"),
}


class KnowledgeBase:
    """The graph for one (seed, size). `entity(k)` is cheap and cached; nothing else is stored."""

    def __init__(self, seed: int = 0, passages: int = 3000):
        self.seed = seed
        self.layout = Layout.for_size(passages)
        self.size = self.layout.total
        self._starts = self.layout.starts()
        self._counts = dict(zip(TYPES, self.layout.counts(), strict=True))
        self._names = {kind: make(seed) for kind, make in _NAME_SPACES.items()}
        self.entity = lru_cache(maxsize=8192)(self._make_entity)

    # --- ids ---------------------------------------------------------------------------------

    def type_of(self, entity_id: int) -> str:
        if not 0 <= entity_id < self.size:
            raise IndexError(f"entity {entity_id} outside 0..{self.size - 1}")
        for kind in reversed(TYPES):
            if entity_id >= self._starts[kind]:
                return kind
        raise AssertionError("unreachable")

    def ids_of(self, kind: str) -> range:
        return range(self._starts[kind], self._starts[kind] + self._counts[kind])

    def random_of(self, kind: str, rng: random.Random) -> int:
        ids = self.ids_of(kind)
        return ids[rng.randrange(len(ids))]

    @cached_property
    def _organisation_kinds(self) -> np.ndarray:
        """Kind number (index into ORG_KINDS) of every organisation; 1 byte each."""
        space = self._names["organisation"]
        return np.array([space.parts(i)[1] for i in range(self._counts["organisation"])], dtype=np.int8)

    @cached_property
    def _organisations_by_kind(self) -> dict[str, np.ndarray]:
        kinds, start = self._organisation_kinds, self._starts["organisation"]
        return {kind: np.flatnonzero(kinds == n).astype(np.int64) + start for n, kind in enumerate(nm.ORG_KINDS)}

    def random_organisation(self, kind: str, rng: random.Random, before: int | None = None) -> int | None:
        """An organisation of `kind` (founded before `before`, when one turns up within a few draws)."""
        pool = self._organisations_by_kind[kind]
        if not len(pool):
            return None
        for _ in range(12):
            candidate = int(pool[rng.randrange(len(pool))])
            if before is None or self.founded_year(candidate) < before:
                return candidate
        return None

    def _rng(self, entity_id: int) -> random.Random:
        return random.Random((self.seed << 32) | entity_id)

    def _draw(self, entity_id: int, low: int, high: int) -> int:
        """A number in [low, high] fixed by (seed, entity): cheap enough to read facts of other entities."""
        return low + _mix64((self.seed << 34) ^ entity_id) % (high - low + 1)

    def _twin(self, kind: str, index: int) -> int | None:
        other = index ^ 1
        return self._starts[kind] + other if other < self._counts[kind] else None

    # --- entities -----------------------------------------------------------------------------

    def _make_entity(self, entity_id: int) -> Entity:
        kind = self.type_of(entity_id)
        index = entity_id - self._starts[kind]
        name, pattern, parts = self._names[kind].parts(index)
        return getattr(self, f"_{kind}")(entity_id, index, name, pattern, parts, self._rng(entity_id))

    def name(self, entity_id: int) -> str:
        kind = self.type_of(entity_id)
        return self._names[kind].name(entity_id - self._starts[kind])

    def _country(self, k, index, name, pattern, parts, rng) -> Entity:
        root = parts[0]
        form = rng.choice(nm.COUNTRY_FORMS)
        attrs = {
            "long_name": f"{form} {name}",
            "language": root + rng.choice(LANGUAGE_ENDINGS),
            "currency": rng.choice(CURRENCIES),
            "region": rng.choice(REGIONS),
            "population_millions": round(rng.uniform(0.4, 60.0), 1),
            "founded": rng.randint(1150, 1960),
        }
        links = {"capital": self._starts["city"] + index}
        return Entity(
            k, "country", "country", name, (name, attrs["long_name"]), links, attrs, self._twin("country", index)
        )

    def _city(self, k, index, name, pattern, parts, rng) -> Entity:
        capital_of = self._starts["country"] + index if index < self._counts["country"] else None
        country = capital_of if capital_of is not None else self.random_of("country", rng)
        twinned = self.random_of("city", rng)
        links = {"located_in": country}
        if twinned != k:
            links["twinned_with"] = twinned
        attrs = {
            "founded": rng.randint(880, 1890),
            "population": _population(rng, big=capital_of is not None),
            "river": rng.choice(nm.ROOTS),
            "feature": rng.choice(CITY_FEATURES),
            "capital_of": capital_of,
        }
        return Entity(k, "city", "city", name, (name,), links, attrs, self._twin("city", index))

    def _organisation(self, k, index, name, pattern, parts, rng) -> Entity:
        kind = nm.ORG_KINDS[pattern]
        founded = self.founded_year(k)
        links = {"founded_by": self._founder(founded, rng), "headquartered_in": self.random_of("city", rng)}
        attrs = {"founded": founded, "staff": rng.randint(12, 900) * 10, "focus": rng.choice(PRODUCTS[kind])}
        return Entity(k, "organisation", kind, name, (name,), links, attrs, self._twin("organisation", index))

    def founded_year(self, organisation_id: int) -> int:
        """Readable without building the organisation (used to keep other entities' years plausible)."""
        kind = nm.ORG_KINDS[self._organisation_kinds[organisation_id - self._starts["organisation"]]]
        return self._draw(organisation_id, *ORG_FOUNDED[kind])

    def _founder(self, founded: int, rng: random.Random) -> int:
        """A person aged 22-70 at the founding when one turns up within a few draws, else anyone."""
        candidate = self.random_of("person", rng)
        for _ in range(40):
            if 22 <= founded - self.birth_year(candidate) <= 70:
                break
            candidate = self.random_of("person", rng)
        return candidate

    def _work(self, k, index, name, pattern, parts, rng) -> Entity:
        creator = self.random_of("person", rng)
        year = min(self.birth_year(creator) + rng.randint(20, 62), 2024)
        kinds = [kind for kind in WORK_KINDS if year >= WORK_SINCE[kind]]
        kind = rng.choices(kinds, weights=[WORK_WEIGHTS[kind] for kind in kinds])[0]
        links = {"created_by": creator, "set_in": self.random_of("city", rng)}
        publisher = self.random_organisation(WORK_PUBLISHER_KIND[kind], rng, before=year)
        if publisher is not None:
            links["published_by"] = publisher
        attrs = {"year": year, "genre": rng.choice(GENRES[kind])}
        return Entity(k, "work", kind, name, (name,), links, attrs, self._twin("work", index))

    def birth_year(self, person_id: int) -> int:
        """Readable without building the person (used to keep other entities' years plausible)."""
        return self._draw(person_id, 1720, 1985)

    def _person(self, k, index, name, pattern, parts, rng) -> Entity:
        born = self.birth_year(k)
        given, surname = parts[0], parts[1] + parts[2]
        birthplace = self.random_of("city", rng)
        links = {"born_in": birthplace}
        university = self.random_organisation("university", rng, before=born + 18)
        if university is not None:
            links["educated_at"] = university
        home = self.random_of("city", rng)
        if home != birthplace:
            links["lives_in"] = home
        prize_year = born + rng.randint(28, 60)
        died = max(born + rng.randint(48, 92), prize_year + 1) if born < 1935 else None
        attrs = {
            "born": born,
            "pronoun": rng.choice(("she", "he")),
            "occupation": rng.choice(OCCUPATIONS),
            "known_for": rng.choice(KNOWN_FOR),
            "prize": f"{rng.choice(nm.ROOTS)} Prize",
            "prize_year": prize_year if prize_year <= 2024 else None,
            "died": died,
        }
        aliases = (name, f"{surname}, {given}")  # not "A. Venholm": normalised, "A." is an article
        return Entity(k, "person", "person", name, aliases, links, attrs, self._twin("person", index))


_MASK64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """SplitMix64's finaliser: a well-spread 64-bit hash of an integer, in plain integer arithmetic."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def _population(rng: random.Random, big: bool) -> int:
    exponent = rng.uniform(5.2, 6.6) if big else rng.uniform(3.6, 6.0)
    return int(round(10**exponent, -2))

"""Questions over the knowledge base: single-hop, bridge (2 hops), comparison and three-hop.

A question walks a chain of typed relations from a subject entity (`created_by` then `born_in`:
"In which city was the author of X born?"); each relation is read from the passage of the entity it
starts from, so a chain of n relations needs n searches. A comparison looks up one attribute of
two entities of one type (often near-namesake twins) and asks which is larger or earlier.

Every question carries the oracle's plan: one `Hop` per passage to read, with a search query that
was checked to bring that passage into the top k of the index, and the thoughts that explain each
step. Question `index` of a category is drawn from an RNG seeded by (knowledge-base seed, category,
index, attempt); an attempt whose chain breaks (a missing link, a cycle) or whose passage no query
retrieves is discarded and the next attempt drawn, so every question the factory returns is solvable.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from gymwire.env_servers.searchqa.knowledge import Entity, KnowledgeBase

CATEGORIES = ("single", "bridge", "comparison", "three_hop")
MAX_ATTEMPTS = 60


@dataclass(frozen=True)
class Hop:
    """One search of the oracle's plan."""

    query: str
    doc: int | None  # the passage this search must find (None: no known target, e.g. real data)
    thought: str


@dataclass(frozen=True)
class Question:
    category: str
    text: str
    answers: tuple[str, ...]  # gold answers; the first is the canonical one
    hops: tuple[Hop, ...]
    conclusion: str  # the oracle's thought before answering
    path: str = ""  # the relations or comparison, for metadata


@dataclass(frozen=True)
class Relation:
    """A link or an attribute, with its wording per subject kind ('*' = any kind)."""

    source: str  # entity type the relation starts from
    target: str  # "link:<name>" or "attr:<name>"
    ask: dict[str, tuple[str, ...]]  # question templates over {x}
    phrase: dict[str, tuple[str, ...]]  # noun phrases over {x}, for chaining (links only)
    fact: dict[str, str]  # statement over {x}, {y}, for the oracle's thoughts

    def pick(self, table: dict[str, tuple[str, ...]], kind: str, rng: random.Random) -> str:
        return rng.choice(table.get(kind) or table["*"])

    def state(self, kind: str, x: str, y: str) -> str:
        return (self.fact.get(kind) or self.fact["*"]).format(x=x, y=y)


RELATIONS: dict[str, Relation] = {
    "created_by": Relation(
        "work",
        "link:created_by",
        ask={
            "novel": ("Who wrote {x}?", "Who is the author of {x}?"),
            "film": ("Who directed {x}?", "Who was the director of {x}?"),
            "album": ("Who recorded {x}?", "Which artist recorded {x}?"),
        },
        phrase={
            "novel": ("the author of {x}", "the writer of {x}"),
            "film": ("the director of {x}",),
            "album": ("the artist who recorded {x}",),
        },
        fact={"novel": "{x} was written by {y}", "film": "{x} was directed by {y}", "album": "{x} was recorded by {y}"},
    ),
    "published_by": Relation(
        "work",
        "link:published_by",
        ask={
            "novel": ("Which company published {x}?", "Who published {x}?"),
            "film": ("Which studio produced {x}?",),
            "album": ("Which label released {x}?",),
        },
        phrase={
            "novel": ("the publisher of {x}",),
            "film": ("the studio that produced {x}",),
            "album": ("the label that released {x}",),
        },
        fact={
            "novel": "{x} was published by {y}",
            "film": "{x} was produced by {y}",
            "album": "{x} was released by {y}",
        },
    ),
    "born_in": Relation(
        "person",
        "link:born_in",
        ask={"*": ("In which city was {x} born?", "Where was {x} born?")},
        phrase={"*": ("the birthplace of {x}", "the city where {x} was born")},
        fact={"*": "{x} was born in {y}"},
    ),
    "educated_at": Relation(
        "person",
        "link:educated_at",
        ask={"*": ("Where did {x} study?", "Which university did {x} attend?")},
        phrase={"*": ("the university that {x} attended",)},
        fact={"*": "{x} studied at {y}"},
    ),
    "located_in": Relation(
        "city",
        "link:located_in",
        ask={"*": ("In which country is {x}?", "Which country is {x} located in?")},
        phrase={"*": ("the country where {x} lies", "the country in which {x} is located")},
        fact={"*": "{x} is in {y}"},
    ),
    "capital": Relation(
        "country",
        "link:capital",
        ask={"*": ("What is the capital of {x}?", "Which city is the capital of {x}?")},
        phrase={"*": ("the capital of {x}",)},
        fact={"*": "the capital of {x} is {y}"},
    ),
    "founded_by": Relation(
        "organisation",
        "link:founded_by",
        ask={"*": ("Who founded {x}?", "Who was the founder of {x}?")},
        phrase={"*": ("the founder of {x}", "the person who founded {x}")},
        fact={"*": "{x} was founded by {y}"},
    ),
    "headquartered_in": Relation(
        "organisation",
        "link:headquartered_in",
        ask={"*": ("In which city is {x} based?", "Where is {x} headquartered?")},
        phrase={"*": ("the city where {x} is based", "the home city of {x}")},
        fact={"*": "{x} is based in {y}"},
    ),
    "birth_year": Relation(
        "person",
        "attr:born",
        ask={"*": ("In what year was {x} born?", "When was {x} born?")},
        phrase={},
        fact={"*": "{x} was born in {y}"},
    ),
    "org_founded": Relation(
        "organisation",
        "attr:founded",
        ask={"*": ("In what year was {x} founded?", "When was {x} founded?")},
        phrase={},
        fact={"*": "{x} was founded in {y}"},
    ),
    "city_founded": Relation(
        "city",
        "attr:founded",
        ask={"*": ("In what year was {x} founded?",)},
        phrase={},
        fact={"*": "{x} was founded in {y}"},
    ),
    "release_year": Relation(
        "work",
        "attr:year",
        ask={"*": ("In what year was {x} first released?", "When did {x} first come out?")},
        phrase={},
        fact={"*": "{x} first came out in {y}"},
    ),
}

CHAINS: dict[str, tuple[tuple[str, ...], ...]] = {
    "single": tuple((name,) for name in RELATIONS),
    "bridge": (
        ("created_by", "born_in"),
        ("created_by", "educated_at"),
        ("created_by", "birth_year"),
        ("published_by", "headquartered_in"),
        ("published_by", "founded_by"),
        ("published_by", "org_founded"),
        ("founded_by", "born_in"),
        ("founded_by", "birth_year"),
        ("born_in", "located_in"),
        ("born_in", "city_founded"),
        ("headquartered_in", "located_in"),
        ("educated_at", "headquartered_in"),
        ("educated_at", "founded_by"),
        ("capital", "city_founded"),
        ("located_in", "capital"),
    ),
    "three_hop": (
        ("created_by", "born_in", "located_in"),
        ("published_by", "headquartered_in", "located_in"),
        ("founded_by", "born_in", "located_in"),
        ("created_by", "educated_at", "headquartered_in"),
        ("published_by", "founded_by", "born_in"),
        ("born_in", "located_in", "capital"),
        ("created_by", "born_in", "city_founded"),
        ("educated_at", "founded_by", "birth_year"),
    ),
}


@dataclass(frozen=True)
class Comparison:
    type: str
    attr: str
    ask: tuple[tuple[str, bool], ...]  # (template over {a}, {b}; True when the larger value wins)
    fact: str  # over {x}, {y}
    show: str = "{}"  # how the passages write the value


COMPARISONS = (
    Comparison(
        "person",
        "born",
        (
            ("Who was born first, {a} or {b}?", False),
            ("Which of {a} and {b} was born earlier?", False),
            ("Who was born later, {a} or {b}?", True),
        ),
        "{x} was born in {y}",
    ),
    Comparison(
        "organisation",
        "founded",
        (
            ("Which was founded first, {a} or {b}?", False),
            ("Which is older, {a} or {b}?", False),
            ("Which was founded more recently, {a} or {b}?", True),
        ),
        "{x} was founded in {y}",
    ),
    Comparison(
        "city",
        "population",
        (
            ("Which city has the larger population, {a} or {b}?", True),
            ("Which is more populous, {a} or {b}?", True),
            ("Which city has fewer inhabitants, {a} or {b}?", False),
        ),
        "{x} has about {y} inhabitants",
        "{:,}",
    ),
    Comparison(
        "work",
        "year",
        (
            ("Which came out first, {a} or {b}?", False),
            ("Which was released earlier, {a} or {b}?", False),
            ("Which is more recent, {a} or {b}?", True),
        ),
        "{x} first came out in {y}",
    ),
)

_SEARCH_HINT = {
    "person": "born",
    "city": "city",
    "country": "country",
    "university": "university",
    "company": "company",
    "publisher": "publishing house",
    "studio": "film studio",
    "label": "record label",
    "novel": "novel",
    "film": "film",
    "album": "album",
}


class Unsuitable(Exception):
    """This draw cannot make a good question; draw again."""


class QuestionFactory:
    """Question `index` of `category` for one knowledge base and one retriever.

    `retrieves(query, doc)` says whether a search for `query` shows passage `doc` (in the top k);
    the factory uses it to choose, and check, the oracle's query for every hop.
    """

    def __init__(self, kb: KnowledgeBase, retrieves: Callable[[str, int], bool]):
        self.kb = kb
        self.retrieves = retrieves
        self.question = lru_cache(maxsize=4096)(self._question)

    def _question(self, category: str, index: int) -> Question:
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")
        for attempt in range(MAX_ATTEMPTS):
            rng = random.Random(f"searchqa-question:{self.kb.seed}:{category}:{index}:{attempt}")
            try:
                if category == "comparison":
                    return self._comparison(rng)
                return self._chain(category, rng.choice(CHAINS[category]), rng)
            except Unsuitable:
                continue
        raise RuntimeError(
            f"no solvable {category} question {index} in {MAX_ATTEMPTS} attempts; is the knowledge base too small?"
        )

    # --- parts ---------------------------------------------------------------------------------

    def _query_for(self, entity: Entity) -> str:
        """The entity's name, or the name plus a type word, whichever retrieves its passage first."""
        for query in (entity.name, f"{entity.name} {_SEARCH_HINT[entity.kind]}"):
            if self.retrieves(query, entity.id):
                return query
        raise Unsuitable(f"no query retrieves {entity.name!r}")

    def _chain(self, category: str, chain: tuple[str, ...], rng: random.Random) -> Question:
        relations = [RELATIONS[name] for name in chain]
        current = self.kb.entity(self.kb.random_of(relations[0].source, rng))
        visited = [current]
        for rel in relations[:-1]:
            current = self._follow(current, rel)
            visited.append(current)
        last = relations[-1]
        kind, _, key = last.target.partition(":")
        if kind == "link":
            answer_entity = self._follow(visited[-1], last)
            if answer_entity.id in {e.id for e in visited}:
                raise Unsuitable("the chain comes back to an entity it started from")
            answers, answer_text = answer_entity.aliases, answer_entity.name
        else:
            value = visited[-1].attrs.get(key)
            if value is None:
                raise Unsuitable(f"{visited[-1].name} has no {key}")
            answers, answer_text = (str(value),), str(value)

        subject = visited[0].name
        for rel, entity in zip(relations[:-1], visited[:-1], strict=True):
            subject = rel.pick(rel.phrase, entity.kind, rng).format(x=subject)
        text = _capitalise(last.pick(last.ask, visited[-1].kind, rng).format(x=subject))

        hops = []
        for i, entity in enumerate(visited):
            if i == 0:
                thought = f"To answer this I need to look up {entity.name}."
            else:
                found = relations[i - 1].state(visited[i - 1].kind, visited[i - 1].name, entity.name)
                thought = f"{_capitalise(found)}. Next I need to look up {entity.name}."
            hops.append(Hop(self._query_for(entity), entity.id, thought))
        final = last.state(visited[-1].kind, visited[-1].name, answer_text)
        return Question(
            category,
            text,
            tuple(answers),
            tuple(hops),
            f"{_capitalise(final)}, so the answer is {answer_text}.",
            " > ".join(chain),
        )

    def _follow(self, entity: Entity, rel: Relation) -> Entity:
        if entity.type != rel.source:
            raise AssertionError(f"{rel} starts from {rel.source}, not {entity.type}")
        link = rel.target.partition(":")[2]
        if link not in entity.links:
            raise Unsuitable(f"{entity.name} has no {link}")
        return self.kb.entity(entity.links[link])

    def _comparison(self, rng: random.Random) -> Question:
        spec = rng.choice(COMPARISONS)
        first = self.kb.entity(self.kb.random_of(spec.type, rng))
        if first.twin is not None and rng.random() < 0.5:
            second = self.kb.entity(first.twin)
        else:
            second = self.kb.entity(self.kb.random_of(spec.type, rng))
        if second.id == first.id or first.attrs[spec.attr] == second.attrs[spec.attr]:
            raise Unsuitable("no difference to ask about")
        a, b = (first, second) if rng.random() < 0.5 else (second, first)
        template, larger_wins = rng.choice(spec.ask)
        value = lambda e: e.attrs[spec.attr]  # noqa: E731
        winner = max((a, b), key=value) if larger_wins else min((a, b), key=value)
        hops = (
            Hop(self._query_for(a), a.id, f"I need to compare both, so I will look up {a.name} first."),
            Hop(
                self._query_for(b),
                b.id,
                f"{_capitalise(spec.fact.format(x=a.name, y=spec.show.format(value(a))))}. "
                f"Next I need to look up {b.name}.",
            ),
        )
        conclusion = (
            f"{_capitalise(spec.fact.format(x=b.name, y=spec.show.format(value(b))))}, and "
            f"{spec.fact.format(x=a.name, y=spec.show.format(value(a)))}, so the answer is {winner.name}."
        )
        return Question(
            "comparison",
            template.format(a=a.name, b=b.name),
            winner.aliases,
            hops,
            conclusion,
            f"{spec.type}.{spec.attr}",
        )


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]

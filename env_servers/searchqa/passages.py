"""Wiki-style passages for knowledge-base entities: a title and ~100 words stating several facts.

Each fact has several paraphrases, picked by the entity's own RNG, so the same fact reads
differently across passages and a reader (or a retriever) cannot lean on one fixed sentence.
Passages also mention distractors on purpose: a second city (where a person lived, where a story
is set), a second year (a prize, a reissue). A passage never states a fact of a *linked* entity,
so multi-hop questions really need one search per hop.
"""

from __future__ import annotations

import random

from gymwire.env_servers.searchqa.knowledge import Entity, KnowledgeBase

FILLERS = {
    "person": (
        "Contemporaries remembered {obj} as patient, stubborn and generous with time.",
        "Letters from this period show a wide circle of friends and rivals.",
        "Several of {poss} notebooks survive in private collections.",
        "{Pron} {was} also a keen walker and an amateur musician.",
        "Much of {poss} early work was published under a pen name.",
        "{Pron} corresponded for years with scholars abroad and kept detailed diaries.",
    ),
    "city": (
        "Its old town was rebuilt after a great fire in {year}.",
        "A tram line links the centre with the outlying districts.",
        "The surrounding countryside is known for sheep farming and small quarries.",
        "Markets are held in the main square twice a week.",
        "The municipal museum holds a large collection of local maps and coins.",
        "Winters are long and wet, while summers are short and mild.",
    ),
    "country": (
        "Its economy rests on fishing, timber and overland trade.",
        "Much of the interior is covered by forest and upland pasture.",
        "The country is divided into a dozen provinces with their own assemblies.",
        "Its flag shows a white tower on a field of blue.",
        "A railway built in the nineteenth century crosses the country from west to east.",
        "Most of the population lives along the rivers and the coast.",
    ),
    "organisation": (
        "It moved to larger premises in {year}.",
        "Its archive holds records going back to the first years of operation.",
        "A charitable foundation linked to it funds local schools.",
        "It survived two changes of ownership in the twentieth century.",
        "Its founding charter is displayed in the entrance hall.",
        "It opened a second branch abroad after a period of rapid growth.",
    ),
    "work": (
        "Critics praised its pacing but disliked the ending.",
        "It was largely forgotten for decades before a revival of interest.",
        "Early reviews were mixed, though sales were strong.",
        "It has been translated or adapted several times.",
        "Scholars have debated its meaning at length.",
        "It is often cited as an influence by younger artists.",
    ),
}


def contents(kb: KnowledgeBase, entity_id: int) -> str:
    """The document as a retrieval corpus stores it: `"Title"` on the first line, then the text."""
    entity = kb.entity(entity_id)
    return f'"{entity.name}"\n{passage_text(kb, entity)}'


def passage_text(kb: KnowledgeBase, e: Entity) -> str:
    rng = random.Random(f"passage:{kb.seed}:{e.id}")
    sentences = _WRITERS[e.type](kb, e, rng)
    sentences.extend(rng.sample(FILLERS[e.type], 3))
    text = " ".join(sentences)
    return text.format(**_pronouns(e), year=_aside_year(e, rng))


def _int(value: object) -> int:
    """An attribute that holds a number (years, counts); attrs mix numbers and text."""
    assert isinstance(value, int), value
    return value


def _text(value: object) -> str:
    """An attribute that holds text (names, genres, pronouns); attrs mix numbers and text."""
    assert isinstance(value, str), value
    return value


def _aside_year(e: Entity, rng: random.Random) -> int:
    if e.type == "person":
        base = _int(e.attrs["died"] or _int(e.attrs["born"]) + 30)
    else:
        base = _int(e.attrs.get("founded") or e.attrs.get("year") or 1900)
    return max(base + 1, min(base + rng.randint(5, 70), 2024))


def _a(word: str) -> str:
    """The indefinite article for `word` (`an album`, `a university`)."""
    vowel = word[:1].lower() in "aeio" or (word[:1].lower() == "u" and not word.lower().startswith(("uni", "use")))
    return "an" if vowel else "a"


def _pronouns(e: Entity) -> dict[str, str]:
    pron = _text(e.attrs.get("pronoun", "it"))
    past = e.attrs.get("died") is not None
    return {
        "pron": pron,
        "Pron": pron.capitalize(),
        "obj": {"she": "her", "he": "him"}.get(pron, "it"),
        "poss": {"she": "her", "he": "his"}.get(pron, "its"),
        "was": "was" if past else "is",
    }


def _esc(text: str) -> str:
    """Names go through str.format later: keep braces literal."""
    return text.replace("{", "{{").replace("}", "}}")


def _person(kb: KnowledgeBase, e: Entity, rng: random.Random) -> list[str]:
    a, name = e.attrs, _esc(e.name)
    born_in = _esc(kb.name(e.links["born_in"]))
    occupation, died = _text(a["occupation"]), a["died"]
    article = _a(occupation)
    if died is not None:
        intro = rng.choice(
            (
                f"{name} ({a['born']}-{died}) was {article} {occupation} born in {born_in}.",
                f"{name} was {article} {occupation} who was born in {born_in} in {a['born']} and died in {died}.",
                f"Born in {born_in} in {a['born']}, {name} was {article} {occupation}; {{pron}} died in {died}.",
            )
        )
    else:
        intro = rng.choice(
            (
                f"{name} (born {a['born']}) is {article} {occupation} from {born_in}.",
                f"{name} is {article} {occupation} who was born in {born_in} in {a['born']}.",
                f"Born in {born_in} in {a['born']}, {name} is {article} {occupation}.",
            )
        )
    out = [intro]
    if "educated_at" in e.links:
        school = _esc(kb.name(e.links["educated_at"]))
        out.append(
            rng.choice(
                (
                    f"{{Pron}} studied at {school}.",
                    f"{name} was educated at {school}.",
                    f"As a student {{pron}} attended {school}.",
                )
            )
        )
    out.append(
        rng.choice((f"{{Pron}} {{was}} best known for {a['known_for']}.", f"{name} became known for {a['known_for']}."))
    )
    if "lives_in" in e.links:
        home = _esc(kb.name(e.links["lives_in"]))
        out.append(
            rng.choice(
                (f"{{Pron}} later settled in {home}.", f"For most of {{poss}} working life {{pron}} lived in {home}.")
            )
        )
    if a["prize_year"] is not None:
        out.append(
            rng.choice(
                (
                    f"In {a['prize_year']} {{pron}} received the {a['prize']}.",
                    f"{name} was awarded the {a['prize']} in {a['prize_year']}.",
                )
            )
        )
    out.append(
        rng.choice(
            (f"A biography of {name} appeared in {{year}}.", f"An exhibition about {name} was held in {{year}}.")
        )
    )
    return out


def _city(kb: KnowledgeBase, e: Entity, rng: random.Random) -> list[str]:
    a, name = e.attrs, _esc(e.name)
    country = _esc(kb.name(e.links["located_in"]))
    out = [
        rng.choice(
            (
                f"{name} is a city in {country}.",
                f"{name} is a city located in {country}.",
                f"The city of {name} lies in {country}.",
            )
        )
    ]
    if a["capital_of"] is not None:
        out.append(rng.choice((f"It is the capital of {country}.", f"{name} serves as the capital of {country}.")))
    out.append(
        rng.choice(
            (
                f"It was founded in {a['founded']}.",
                f"The city was founded in {a['founded']}.",
                f"Records date the founding of {name} to {a['founded']}.",
            )
        )
    )
    out.append(rng.choice((f"{name} stands on the River {a['river']}.", f"The River {a['river']} runs through it.")))
    population = f"{a['population']:,}"
    out.append(
        rng.choice((f"It has a population of about {population}.", f"Around {population} people live in {name}."))
    )
    out.append(rng.choice((f"The city is known for {a['feature']}.", f"{name} is famous for {a['feature']}.")))
    if "twinned_with" in e.links:
        twin = _esc(kb.name(e.links["twinned_with"]))
        out.append(rng.choice((f"{name} is twinned with {twin}.", f"It has a partnership with the city of {twin}.")))
    return out


def _country(kb: KnowledgeBase, e: Entity, rng: random.Random) -> list[str]:
    a, name = e.attrs, _esc(e.name)
    capital = _esc(kb.name(e.links["capital"]))
    long_name = _esc(_text(a["long_name"]))
    return [
        rng.choice(
            (
                f"{name}, officially the {long_name}, is a country in {a['region']}.",
                f"{name} (officially the {long_name}) is a state located in {a['region']}.",
            )
        ),
        rng.choice(
            (
                f"Its capital is {capital}.",
                f"The capital of {name} is {capital}.",
                f"{capital} is its capital and largest city.",
            )
        ),
        f"The official language is {a['language']}, and the currency is the {a['currency']}.",
        rng.choice(
            (
                f"{name} has about {a['population_millions']} million inhabitants.",
                f"The population is roughly {a['population_millions']} million.",
            )
        ),
        rng.choice((f"It became independent in {a['founded']}.", f"The {long_name} was proclaimed in {a['founded']}.")),
        f"It shares a border with {_esc(kb.name(kb.random_of('country', rng)))}.",
    ]


_ORG_NOUN = {
    "university": "university",
    "company": "company",
    "publisher": "publishing house",
    "studio": "film studio",
    "label": "record label",
}


def _organisation(kb: KnowledgeBase, e: Entity, rng: random.Random) -> list[str]:
    a, name, noun = e.attrs, _esc(e.name), _ORG_NOUN[e.kind]
    article = _a(noun)
    founder = _esc(kb.name(e.links["founded_by"]))
    city = _esc(kb.name(e.links["headquartered_in"]))
    out = [
        rng.choice(
            (
                f"{name} is {article} {noun} headquartered in {city}.",
                f"{name} is {article} {noun} based in {city}.",
                f"{name} is {article} {noun} with its headquarters in {city}.",
            )
        ),
        rng.choice(
            (
                f"It was founded in {a['founded']} by {founder}.",
                f"{founder} founded it in {a['founded']}.",
                f"{name} was founded by {founder} in {a['founded']}.",
            )
        ),
        rng.choice((f"It is known for {a['focus']}.", f"{name} specialises in {a['focus']}.")),
    ]
    director = _esc(kb.name(kb.random_of("person", rng)))
    out.append(rng.choice((f"Its longest-serving director was {director}.", f"{director} led it for many years.")))
    staff = f"{a['staff']:,}"
    if e.kind == "university":
        out.append(rng.choice((f"It has about {staff} students.", f"Some {staff} students study there.")))
    else:
        out.append(rng.choice((f"It employs about {staff} people.", f"Some {staff} people work there.")))
    return out


_CREATED = {
    "novel": ("novel", "written by", "author"),
    "film": ("film", "directed by", "director"),
    "album": ("album", "recorded by", "artist"),
}
_PUBLISHED = {"novel": "published by", "film": "produced by", "album": "released by"}


def _work(kb: KnowledgeBase, e: Entity, rng: random.Random) -> list[str]:
    a, name = e.attrs, _esc(e.name)
    noun, created, _ = _CREATED[e.kind]
    creator = _esc(kb.name(e.links["created_by"]))
    setting = _esc(kb.name(e.links["set_in"]))
    genre = _text(a["genre"])
    out = [
        rng.choice(
            (
                f"{name} is {_a(genre)} {genre} {noun} from {a['year']}, {created} {creator}.",
                f"{name} is {_a(genre)} {genre} {noun} {created} {creator}, first released in {a['year']}.",
                f"{created.capitalize()} {creator}, {name} is {_a(genre)} {genre} {noun} from {a['year']}.",
            )
        )
    ]
    if "published_by" in e.links:
        publisher = _esc(kb.name(e.links["published_by"]))
        verb = _PUBLISHED[e.kind]
        out.append(rng.choice((f"It was {verb} {publisher}.", f"The {noun} was {verb} {publisher}.")))
    if e.kind == "album":
        out.append(rng.choice((f"It was recorded in {setting}.", f"The sessions took place in {setting}.")))
    else:
        out.append(rng.choice((f"The story is set in {setting}.", f"Its story takes place in {setting}.")))
    out.append(rng.choice((f"{name} was reissued in {{year}}.", f"A new edition of {name} appeared in {{year}}.")))
    designer = _esc(kb.name(kb.random_of("person", rng)))
    out.append(rng.choice((f"The cover was designed by {designer}.", f"{designer} wrote an early review of it.")))
    return out


_WRITERS = {"person": _person, "city": _city, "country": _country, "organisation": _organisation, "work": _work}

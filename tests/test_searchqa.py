"""SearchQA: grammar and scoring, result format, the oracle on every tier, retrieval of every hop,
splits, determinism across processes, the index cache, the real-data loader, and a live server."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gymwire.env_servers.conformance import RULES, run_suite
from gymwire.env_servers.sdk import StepOutcome, Task, UnknownTask
from gymwire.env_servers.sdk.background import BackgroundServer
from gymwire.env_servers.sdk.server import ServerConfig
from gymwire.env_servers.sdk.service import ServiceLimits
from gymwire.env_servers.searchqa import SearchQAEnvironment, grammar
from gymwire.env_servers.searchqa.bm25 import Bm25Index, tokenize
from gymwire.env_servers.searchqa.knowledge import TYPES, KnowledgeBase
from gymwire.env_servers.searchqa.questions import CATEGORIES
from gymwire.env_servers.searchqa.store import format_information
from gymwire.env_servers.searchqa.tasks import DEFAULT_TIERS, GeneratedTasks
from tests.conftest import json_in_fresh_process

SAMPLES_PER_CATEGORY = 100


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("searchqa-cache")


@pytest.fixture(scope="module")
def env(cache: Path) -> SearchQAEnvironment:
    return SearchQAEnvironment(cache_dir=cache)


def sample_tasks(env: SearchQAEnvironment, category: str, count: int = SAMPLES_PER_CATEGORY) -> list[Task]:
    tasks = env.catalogue().list(category=category)
    return [tasks[i] for i in range(0, len(tasks), max(1, len(tasks) // count))][:count]


def play_expert(env: SearchQAEnvironment, task: Task, max_turns: int = 5) -> list[StepOutcome]:
    episode = env.start(task)
    episode.reset()
    outcomes = []
    for _ in range(max_turns):
        turn = episode.expert_action()
        assert turn is not None and turn.startswith("Thought: ")
        outcomes.append(episode.step(turn))
        if outcomes[-1].terminated:
            break
    return outcomes


# --- grammar and scoring -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        ("<search>capital of Ostravia</search>", ("search", "capital of Ostravia")),
        ("Thought: easy.\n<answer> Port Calder </answer>", ("answer", "Port Calder")),
        ("<search>first</search> then <answer>second</answer>", ("search", "first")),
        ("<answer>first</answer> then <search>second</search>", ("answer", "first")),
        ("<search>a</search><search>b</search>", ("search", "a")),
        ("<search>spans\ntwo lines</search>", ("search", "spans\ntwo lines")),
        ("<search>unclosed <answer>closed</answer>", ("answer", "closed")),  # the first *complete* pair
        ("<think>hmm</think><answer>x</answer>", ("answer", "x")),
    ],
)
def test_first_complete_tag_counts(turn: str, expected: tuple[str, str]) -> None:
    action = grammar.parse_turn(turn)
    assert action is not None and (action.kind, action.content) == expected


@pytest.mark.parametrize(
    "turn",
    [
        "",
        "just text",
        "<search>never closed",
        "<search>x</answer>",
        "<SEARCH>x</SEARCH>",
        "search: x",
        "<answer x</answer>",
    ],
)
def test_turns_without_a_tag_pair(turn: str) -> None:
    assert grammar.parse_turn(turn) is None


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("The Beatles!", "beatles"),
        ("  An   apple,  pie ", "apple pie"),
        ("a.b-c", "abc"),
        ("THE THEORY", "theory"),
        ("Anne of the Island", "anne of island"),  # only whole-word articles go
        ("1,650", "1650"),
        ("", ""),
    ],
)
def test_squad_normalisation(text: str, normalised: str) -> None:
    assert grammar.normalize_answer(text) == normalised


def test_exact_match_any_gold() -> None:
    golds = ("Aldric Venholm", "Venholm, Aldric")
    assert grammar.exact_match("aldric venholm.", golds)
    assert grammar.exact_match("Venholm Aldric", golds)  # punctuation dropped from both sides
    assert not grammar.exact_match("Venholm", golds)
    assert grammar.normalize_answer("A. Venholm") == "venholm"  # why initials make bad aliases
    assert not grammar.exact_match("Aldric Venhold", golds)
    assert grammar.exact_match("the Republic of Ostravia", ("Republic of Ostravia",))


def test_result_format_is_search_r1s() -> None:
    shown = format_information(['"First Title"\nFirst text.', '"Second"\nline one\nline two', "no newline"])
    assert shown == (
        '<information>Doc 1(Title: "First Title") First text.\n'
        'Doc 2(Title: "Second") line one\nline two\n'
        "Doc 3(Title: no newline)</information>"
    )
    assert format_information([]) == f"<information>{grammar.NO_MATCH}</information>"


# --- episodes ----------------------------------------------------------------------------------


def test_first_observation_is_the_question(env: SearchQAEnvironment) -> None:
    task = env.catalogue().get("gen:bridge:0")
    question = env.question(task)
    assert env.start(task).reset() == f"Question: {question.text}"
    assert question.text.endswith("?")


def test_invalid_and_empty_turns(env: SearchQAEnvironment) -> None:
    episode = env.start(env.catalogue().get("gen:single:0"))
    episode.reset()
    invalid = episode.step("I think the answer is Port Calder.")
    assert (invalid.observation, invalid.action_valid, invalid.terminated, invalid.reward) == (
        grammar.INVALID,
        False,
        False,
        0.0,
    )
    assert "<search>" in invalid.observation and "<answer>" in invalid.observation
    empty = episode.step("<search>  </search>")
    assert not empty.action_valid and not empty.terminated and "empty" in empty.observation
    assert empty.parsed_action == "<search></search>"
    assert not episode.step("<answer></answer>").action_valid


def test_search_shows_top_three_and_echoes_action(env: SearchQAEnvironment) -> None:
    task = env.catalogue().get("gen:single:3")
    hop = env.question(task).hops[0]
    episode = env.start(task)
    episode.reset()
    out = episode.step(f"Thought: look it up.\n<search> {hop.query} </search> trailing text")
    assert out.action_valid and not out.terminated and out.reward == 0
    assert out.parsed_action == f"<search>{hop.query}</search>"
    assert out.observation.startswith('<information>Doc 1(Title: "') and out.observation.endswith("</information>")
    assert out.observation.count("(Title: ") == 3 and "\nDoc 2(Title: " in out.observation
    assert len(out.info["docs"]) == 3 and str(hop.doc) in out.info["docs"]


def test_search_without_matching_terms(env: SearchQAEnvironment) -> None:
    episode = env.start(env.catalogue().get("gen:single:0"))
    episode.reset()
    out = episode.step("<search>the of and</search>")  # stopwords only
    assert out.action_valid and out.observation == f"<information>{grammar.NO_MATCH}</information>"


def test_answer_ends_the_episode_search_r1(env: SearchQAEnvironment) -> None:
    task = env.catalogue().get("gen:single:1")
    gold = env.question(task).answers[0]
    wrong = env.start(task)
    wrong.reset()
    out = wrong.step("<answer>certainly not this</answer>")
    assert (out.terminated, out.success, out.reward, out.observation) == (True, False, 0.0, grammar.WRONG_FINAL)
    assert out.parsed_action == "<answer>certainly not this</answer>"
    right = env.start(task)
    right.reset()
    out = right.step(f"<answer>{gold.upper()}!</answer>")
    assert (out.terminated, out.success, out.reward, out.observation) == (True, True, 1.0, grammar.CORRECT)


def test_wrong_answer_can_be_retried_agentgym(cache: Path) -> None:
    env = SearchQAEnvironment(cache_dir=cache, end_on_answer=False)
    assert "may search again" in env.describe().instruction
    task = env.catalogue().get("gen:single:1")
    episode = env.start(task)
    episode.reset()
    out = episode.step("<answer>certainly not this</answer>")
    assert (out.terminated, out.reward, out.observation) == (False, 0.0, grammar.WRONG_RETRY)
    out = episode.step(episode.expert_action())  # the oracle still knows what to do
    out = out if out.terminated else episode.step(episode.expert_action())
    assert out.terminated and out.success and out.reward == 1.0


def test_state_key_is_what_was_retrieved_and_how_answering_stands(cache: Path, env: SearchQAEnvironment) -> None:
    task = env.catalogue().get("gen:bridge:0")
    first, second = (hop.query for hop in env.question(task).hops)

    def keys(turns: list[str], environment: SearchQAEnvironment = env) -> list[str]:
        episode = environment.start(task)
        episode.reset()
        return [episode.state_key()] + [(episode.step(turn), episode.state_key())[1] for turn in turns]

    one = keys([f"<search>{first}</search>", "no tag", f"<search>{first}</search>", f"<search>{second}</search>"])
    other = keys([f"<search>{second}</search>", f"<search> {first.upper()} </search>"])
    assert one[-1] == other[-1]  # the same passages, retrieved in the other order and by another spelling
    assert one[1] == one[2] == one[3] and len({one[0], one[1], one[4], other[1]}) == 4
    wrong_final = keys(["<answer>certainly not this</answer>"])
    assert wrong_final[1] != wrong_final[0]  # the episode is over
    retry = SearchQAEnvironment(cache_dir=cache, end_on_answer=False)
    wrong_retry = keys(["<answer>certainly not this</answer>"], retry)
    assert wrong_retry[1] == wrong_retry[0]  # nothing changed: the agent may search and answer again


def test_aliases_are_accepted(env: SearchQAEnvironment) -> None:
    kb = env.kb
    person = next(kb.entity(k) for k in kb.ids_of("person"))
    country = kb.entity(kb.ids_of("country")[0])
    given, surname = person.name.split()
    assert person.aliases[1] == f"{surname}, {given}"
    assert country.aliases[1].endswith(country.name) and country.aliases[1] != country.name


# --- the oracle and retrieval ---------------------------------------------------------------------


@pytest.mark.parametrize("category", CATEGORIES)
def test_oracle_solves_every_tier(env: SearchQAEnvironment, category: str) -> None:
    hops = {"single": 1, "bridge": 2, "comparison": 2, "three_hop": 3}[category]
    for task in sample_tasks(env, category):
        outcomes = play_expert(env, task)
        assert outcomes[-1].terminated and outcomes[-1].success and outcomes[-1].reward == 1.0, task.id
        assert all(o.action_valid for o in outcomes)
        assert len(outcomes) <= hops + 1 <= env.describe().default_max_turns
        assert len(env.question(task).hops) == hops


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_oracle_query_retrieves_its_passage(env: SearchQAEnvironment, category: str) -> None:
    for task in sample_tasks(env, category):
        for hop in env.question(task).hops:
            hits = env.retriever.search(hop.query)
            assert len(hits) == 3 and hop.doc in [h.doc for h in hits], (task.id, hop.query)
            assert env.kb.name(hop.doc) in hop.query


def test_questions_are_answered_by_their_last_passage(env: SearchQAEnvironment) -> None:
    """The gold answer is written in the passage of the last hop (comparisons: of the winner)."""
    for category in ("single", "bridge", "three_hop"):
        for task in sample_tasks(env, category, 15):
            question = env.question(task)
            text = env.retriever.documents.contents(question.hops[-1].doc)
            assert question.answers[0] in text, (task.id, question.answers[0])


def test_comparisons_use_near_namesakes(env: SearchQAEnvironment) -> None:
    twins = 0
    for task in sample_tasks(env, "comparison"):
        a, b = (env.kb.entity(h.doc) for h in env.question(task).hops)
        assert a.type == b.type and a.id != b.id
        twins += a.twin == b.id
    assert twins >= 5  # distractors with similar names are asked about on purpose


def test_unknown_ids(env: SearchQAEnvironment) -> None:
    catalogue = env.catalogue()
    for bad in ("gen:nope:1", "gen:single:x", "gen:single:-1", "qa:0", "single-1"):
        with pytest.raises(UnknownTask):
            catalogue.get(bad)
    unlisted = catalogue.get("gen:three_hop:123456")  # any index resolves
    assert unlisted.difficulty == "hard" and play_expert(env, unlisted)[-1].success


# --- catalogue ---------------------------------------------------------------------------------


def test_tiers_categories_and_disjoint_splits(env: SearchQAEnvironment) -> None:
    catalogue = env.catalogue()
    assert len(catalogue) == 4 * 500
    for category in CATEGORIES:
        tasks = catalogue.list(category=category)
        assert {t.difficulty for t in tasks} == {"easy" if category == "single" else "hard"}
        train = {t.id for t in tasks if t.split == "train"}
        test = {t.id for t in tasks if t.split == "test"}
        assert train and test and not train & test and len(train) + len(test) == len(tasks)
        assert 0.1 < len(test) / len(tasks) < 0.3
    # the split is a function of the id alone: a bigger listing keeps every id's split
    wider = GeneratedTasks(DEFAULT_TIERS, 20, "another knowledge base").catalogue(900)
    splits = {t.id: t.split for t in catalogue.list()}
    assert sum(splits[t.id] == t.split for t in wider.list() if t.id in splits) == len(splits)


def test_custom_tiers(cache: Path) -> None:
    tiers = {"single": "easy", "bridge": "medium", "comparison": "medium", "three_hop": "hard"}
    env = SearchQAEnvironment(cache_dir=cache, tiers=tiers, questions_per_category=10)
    assert {t.difficulty for t in env.catalogue().list(category="comparison")} == {"medium"}
    with pytest.raises(ValueError, match="every category"):
        SearchQAEnvironment(cache_dir=cache, tiers={"single": "easy"})


def test_description(env: SearchQAEnvironment) -> None:
    d = env.describe()
    assert (d.name, d.provides_expert, d.provides_valid_actions, d.default_max_turns, d.max_turns_limit) == (
        "searchqa",
        True,
        False,
        5,
        50,
    )
    assert "<search>query</search>" in d.instruction and "<answer>text</answer>" in d.instruction
    assert "first answer ends" in d.instruction


# --- knowledge base, names, determinism -------------------------------------------------------------


def test_names_are_unique_across_types() -> None:
    kb = KnowledgeBase(seed=3, passages=30_000)
    names = [kb.name(k) for k in range(kb.size)]
    assert len(set(names)) == len(names)
    assert Counter(kb.type_of(k) for k in range(kb.size)).keys() == set(TYPES)


def test_same_seed_same_world_other_seed_other_world() -> None:
    a, b, c = KnowledgeBase(0, 500), KnowledgeBase(0, 500), KnowledgeBase(1, 500)
    assert [a.entity(k) for k in range(0, 500, 7)] == [b.entity(k) for k in range(0, 500, 7)]
    assert sum(a.name(k) != c.name(k) for k in range(500)) > 450


_PRINT_OBSERVATIONS = """
import json, sys
from gymwire.env_servers.searchqa import SearchQAEnvironment
env = SearchQAEnvironment(cache_dir=sys.argv[1])
out = []
for task_id in sys.argv[2:]:
    episode = env.start(env.catalogue().get(task_id))
    out.append([episode.reset(), episode.step(episode.expert_action()).observation])
print(json.dumps(out))
"""
DETERMINISM_IDS = ["gen:single:0", "gen:bridge:7", "gen:comparison:11", "gen:three_hop:42", "gen:bridge:987654"]


def test_determinism_across_processes(env: SearchQAEnvironment, tmp_path: Path) -> None:
    here = []
    for task_id in DETERMINISM_IDS:
        episode = env.start(env.catalogue().get(task_id))
        here.append([episode.reset(), episode.step(episode.expert_action()).observation])
    # and a fresh cache: a fresh build
    assert json_in_fresh_process(_PRINT_OBSERVATIONS, str(tmp_path), *DETERMINISM_IDS, hash_seed="4242") == here


# --- BM25 and the cache ------------------------------------------------------------------------------


def test_bm25_scores_match_bm25s() -> None:
    bm25s = pytest.importorskip("bm25s")
    kb = KnowledgeBase(5, 400)
    texts = [kb.name(k) + " " + " ".join(kb.name((k * 7 + j) % 400) for j in range(3)) for k in range(400)]
    ours = Bm25Index.build(texts, k1=0.9, b=0.4, chunk_docs=64)  # several chunks
    reference = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    reference.index([tokenize(t) for t in texts], show_progress=False)
    for k in range(0, 400, 13):
        query = kb.name(k)
        hits = ours.search(query, 5)
        expected = reference.get_scores(tokenize(query))
        assert [h.doc for h in hits][:1] == [int(np.argmax(expected))]
        assert np.allclose([h.score for h in hits], expected[[h.doc for h in hits]], rtol=1e-4)


@pytest.mark.parametrize("vocabulary", [30, 3000])  # common terms (dense scoring) and rare ones (sparse)
def test_bm25_top_k_matches_brute_force(vocabulary: int) -> None:
    rng = random.Random(vocabulary)
    words = [f"w{i}" for i in range(vocabulary)]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(3000)]
    index = Bm25Index.build(texts, chunk_docs=700)
    for _ in range(100):
        query = " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
        scores = np.zeros(len(texts))
        for term, times in Counter(index.vocab[w] for w in query.split() if w in index.vocab).items():
            start, end = index.indptr[term], index.indptr[term + 1]
            np.add.at(scores, index.docs[start:end], index.weights[start:end].astype(np.float64) * times)
        for k in (1, 3, 20):
            expected = sorted(np.flatnonzero(scores > 0), key=lambda d: (-round(scores[d], 9), d))[:k]
            assert [h.doc for h in index.search(query, k)] == expected, (query, k)


def test_bm25_save_load_roundtrip(tmp_path: Path) -> None:
    texts = ["alpha beta", "beta gamma gamma", "delta", "alpha alpha alpha epsilon"]
    index = Bm25Index.build(texts, chunk_docs=3)
    index.save(tmp_path)
    loaded = Bm25Index.load(tmp_path)
    for query in ("alpha", "gamma beta", "zeta", "alpha delta"):
        assert index.search(query, 3) == loaded.search(query, 3)
    assert [h.doc for h in index.search("alpha", 3)] == [3, 0]  # only documents that match
    assert index.search("", 3) == [] and index.search("alpha", 0) == []


def test_index_is_built_once_then_loaded(cache: Path, env: SearchQAEnvironment, monkeypatch) -> None:
    entries = sorted(p.name for p in cache.iterdir())
    monkeypatch.setattr(Bm25Index, "build", classmethod(lambda *a, **k: pytest.fail("rebuilt a cached index")))
    again = SearchQAEnvironment(cache_dir=cache)
    assert sorted(p.name for p in cache.iterdir()) == entries
    task = again.catalogue().get("gen:bridge:5")
    assert again.start(task).reset() == env.start(task).reset()


# --- real data ----------------------------------------------------------------------------------------


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    return path


@pytest.fixture()
def real_files(tmp_path: Path) -> tuple[Path, Path]:
    corpus = write_jsonl(
        tmp_path / "wiki.jsonl",
        [
            {"id": "0", "contents": '"Lake Ostra"\nLake Ostra is the deepest lake of the Velm valley.'},
            {"id": "1", "contents": '"Orin Tazel"\nOrin Tazel was a glassmaker born in Kettering Mill in 1822.'},
            {"id": "2", "contents": '"Kettering Mill"\nKettering Mill is a village on the river Sorn.\nIt has a mill.'},
            {"id": "3", "contents": '"Sorn"\nThe Sorn is a river that flows into Lake Ostra.'},
            {"id": "4", "contents": '"Velm"\nThe Velm valley lies between two ranges.'},
        ],
    )
    qa = write_jsonl(
        tmp_path / "nq_dev.jsonl",
        [
            {
                "id": "q-a",
                "question": "Where was Orin Tazel born?",
                "golden_answers": ["Kettering Mill"],
                "metadata": {"level": "easy"},
                "category": "birthplace",
            },
            {"question": "Into which lake does the Sorn flow?", "golden_answers": "Lake Ostra", "difficulty": "hard"},
            {"question": "What is the deepest lake of the Velm valley?", "golden_answers": ["Lake Ostra", "Ostra"]},
        ],
    )
    return qa, corpus


def test_real_data_loader(real_files: tuple[Path, Path], tmp_path: Path) -> None:
    qa, corpus = real_files
    env = SearchQAEnvironment(qa_path=qa, corpus_path=corpus, cache_dir=tmp_path / "cache")
    tasks = {t.id: t for t in env.catalogue().list()}
    assert list(tasks) == ["qa:q-a", "qa:1", "qa:2"]  # the id field, else the line number
    assert [t.difficulty for t in tasks.values()] == ["unknown", "hard", "unknown"]
    assert [t.category for t in tasks.values()] == ["birthplace", "nq_dev", "nq_dev"]
    episode = env.start(tasks["qa:q-a"])
    assert episode.reset() == "Question: Where was Orin Tazel born?"
    out = episode.step("<search>Orin Tazel</search>")
    assert out.observation.startswith('<information>Doc 1(Title: "Orin Tazel") Orin Tazel was a glassmaker')
    assert out.info["docs"][0] == "1"
    village = env.start(tasks["qa:1"])
    village.reset()
    shown = village.step("<search>Kettering Mill village</search>").observation
    assert 'Doc 1(Title: "Kettering Mill") Kettering Mill is a village on the river Sorn.\nIt has a mill.' in shown
    for task in tasks.values():  # the oracle searches the question, then answers the gold answer
        assert play_expert(env, task)[-1].success
    last = env.start(tasks["qa:2"])
    last.reset()
    assert last.step("<answer>ostra</answer>").success  # any gold answer counts


def test_real_data_options(real_files: tuple[Path, Path], tmp_path: Path) -> None:
    qa, corpus = real_files
    env = SearchQAEnvironment(
        qa_path=qa,
        corpus_path=corpus,
        cache_dir=tmp_path,
        qa_split="test",
        difficulty_field="metadata.level",
        category_field=None,
        default_difficulty="mixed",
    )
    tasks = env.catalogue().list()
    assert {t.split for t in tasks} == {"test"}
    assert [t.difficulty for t in tasks] == ["easy", "mixed", "mixed"]
    assert {t.category for t in tasks} == {"nq_dev"}
    with pytest.raises(ValueError, match="both"):
        SearchQAEnvironment(qa_path=qa, cache_dir=tmp_path)


def test_real_data_errors_name_the_line(tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "0", "contents": '"T"\ntext'}])
    bad_qa = tmp_path / "qa.jsonl"
    bad_qa.write_text('{"question": "ok?", "golden_answers": ["x"]}\n{"question": "no answers"}\n')
    with pytest.raises(ValueError, match=r"qa.jsonl:2: 'golden_answers'"):
        SearchQAEnvironment(qa_path=bad_qa, corpus_path=corpus, cache_dir=tmp_path)
    bad_qa.write_text(
        '{"id": 1, "question": "a?", "golden_answers": ["x"]}\n{"id": "1", "question": "b?", "golden_answers": ["y"]}\n'
    )
    with pytest.raises(ValueError, match="duplicate id '1'"):
        SearchQAEnvironment(qa_path=bad_qa, corpus_path=corpus, cache_dir=tmp_path)
    good_qa = write_jsonl(tmp_path / "good.jsonl", [{"question": "q?", "golden_answers": ["x"]}])
    bad_corpus = tmp_path / "bad.jsonl"
    bad_corpus.write_text('{"id": "0", "contents": "\\"T\\"\\ntext"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not JSON"):
        SearchQAEnvironment(qa_path=good_qa, corpus_path=bad_corpus, cache_dir=tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".building")]  # no half-built entry left


# --- a real server ------------------------------------------------------------------------------------


def test_server_conforms(cache: Path) -> None:
    config = ServerConfig(port=0, grace_seconds=0.5, limits=ServiceLimits(max_sessions=64))
    with BackgroundServer(lambda: SearchQAEnvironment(cache_dir=cache), config) as server:
        results = run_suite(server.address)
    assert len(results) == len(RULES)
    failed = [(r.name, r.detail) for r in results if r.status == "fail"]
    assert not failed
    assert [r.name for r in results if r.status == "skip"] == []

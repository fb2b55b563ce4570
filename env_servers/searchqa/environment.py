"""SearchQA as a gymwire `Environment`: answer questions by searching a corpus, Search-R1 style.

Two sources of tasks. By default a generated knowledge base of fictional entities (seeded, any
size) and its questions: single-hop, bridge, comparison, three-hop, with an oracle for each. With
`qa_path` and `corpus_path`, a user's FlashRAG-style QA file and corpus instead. Either way the
BM25 index is built once and cached on disk (see retrieval.py); later starts load it in well under
a second.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gymwire.env_servers.sdk import EnvDescription, Environment, Task, TaskCatalogue, UnknownTask
from gymwire.env_servers.searchqa.episode import SearchQAEpisode
from gymwire.env_servers.searchqa.knowledge import KnowledgeBase
from gymwire.env_servers.searchqa.questions import Hop, Question, QuestionFactory
from gymwire.env_servers.searchqa.real import read_qa
from gymwire.env_servers.searchqa.retrieval import Retriever
from gymwire.env_servers.searchqa.tasks import DEFAULT_TIERS, GeneratedTasks, RealTasks, parse_generated

VERSION = "1.0.0"

_INSTRUCTION = """\
Answer the question. {source} You may search as many times as you need.

Each turn, think briefly, then write exactly one of these two actions:
- <search>query</search> to search. The reply lists the {top_k} best-matching passages as \
<information>Doc 1(Title: "...") text
Doc 2(Title: "...") text ...</information>
- <answer>text</answer> to give your final answer. Give only the answer itself (a name, a year or a short phrase), \
for example <answer>Port Calder</answer>.

Only the first <search> or <answer> in a turn counts. {answer_rule} An answer is correct when it \
matches the expected one after ignoring case, punctuation and the words a, an and the. Questions \
may need several searches: find one fact, then search for what it points to.

Write your turns like this:
Thought: <your reasoning>
<search>query</search>"""

_GENERATED_SOURCE = (
    "The question is about fictional people, places, organisations and works, so you cannot "
    "know the answer from memory: find it by searching a collection of encyclopedia-style "
    "passages about them."
)
_REAL_SOURCE = "Search a collection of encyclopedia passages for the facts you need, rather than guessing."
_END_RULE = "Your first answer ends the task, so search until you are sure."
_RETRY_RULE = "If your answer is wrong you are told so and may search again and answer again."

ACTION_GRAMMAR = (
    "One action per turn: <search>query</search> or <answer>text</answer>; the first complete "
    "tag pair in the turn counts and other text is ignored; an empty tag is invalid."
)


class SearchQAEnvironment(Environment):
    """Search-R1-style question answering over BM25.

    seed / passages: the generated knowledge base (one passage per entity; at least 60).
    questions_per_category: generated questions listed per category (any index resolves).
    tiers: category -> difficulty for generated questions (default single easy, the rest hard).
    test_percent: share of task ids (by stable hash) in the test split.
    end_on_answer: True (Search-R1) ends the episode at the first answer; False (AgentGym) lets the
        agent retry after a wrong answer until the turn limit.
    top_k: passages per search (Search-R1 and AgentGym: 3).
    qa_path / corpus_path: serve a FlashRAG-style QA jsonl over a corpus jsonl instead (both needed).
    qa_split: "train" or "test" puts every question of the file in that split; None hashes ids.
    difficulty_field / category_field: dotted field paths read from each QA record when present.
    default_difficulty: difficulty of QA records without the field.
    cache_dir: root of the index cache (default ~/.cache/gymwire/searchqa).
    k1 / b: BM25 parameters (Pyserini's defaults).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        passages: int = 3000,
        questions_per_category: int = 500,
        tiers: Mapping[str, str] = DEFAULT_TIERS,
        test_percent: int = 20,
        end_on_answer: bool = True,
        top_k: int = 3,
        qa_path: str | Path | None = None,
        corpus_path: str | Path | None = None,
        qa_split: str | None = None,
        difficulty_field: str | None = "difficulty",
        category_field: str | None = "category",
        default_difficulty: str = "unknown",
        cache_dir: str | Path | None = None,
        k1: float = 0.9,
        b: float = 0.4,
    ):
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.end_on_answer, self.top_k = end_on_answer, top_k
        if (qa_path is None) != (corpus_path is None):
            raise ValueError("real data needs both qa_path and corpus_path")
        self.real = qa_path is not None
        if qa_path is not None:
            assert corpus_path is not None  # both or neither, checked above
            items = read_qa(qa_path)
            self.retriever = Retriever.for_corpus(corpus_path, top_k=top_k, cache_root=cache_dir, k1=k1, b=b)
            self._real = RealTasks(
                items,
                source=Path(qa_path).stem,
                test_percent=test_percent,
                split=qa_split,
                difficulty_field=difficulty_field,
                default_difficulty=default_difficulty,
                category_field=category_field,
            )
            self._catalogue = self._real.catalogue()
            self.kb = None
            passage_count = len(self.retriever.documents)
            self.summary = f"{len(items)} questions from {Path(qa_path).name} over {passage_count} passages"
        else:
            self.kb = KnowledgeBase(seed, passages)
            self.retriever = Retriever.for_generated(self.kb, top_k=top_k, cache_root=cache_dir, k1=k1, b=b)
            self.questions = QuestionFactory(self.kb, self.retriever.retrieves)
            label = f"seed={seed},passages={self.kb.size}"
            self._catalogue = GeneratedTasks(tiers, test_percent, label).catalogue(questions_per_category)
            self.summary = (
                f"generated knowledge base ({label}): fictional people, places, organisations and works; "
                "single-hop, bridge, comparison and three-hop questions"
            )

    def describe(self) -> EnvDescription:
        rule = _END_RULE if self.end_on_answer else _RETRY_RULE
        return EnvDescription(
            name="searchqa",
            version=VERSION,
            description=f"Search-R1-style question answering with a BM25 search tool; {self.summary}.",
            instruction=_INSTRUCTION.format(
                source=_REAL_SOURCE if self.real else _GENERATED_SOURCE, top_k=self.top_k, answer_rule=rule
            ),
            action_grammar=ACTION_GRAMMAR,
            provides_valid_actions=False,
            provides_expert=True,
            default_max_turns=5,
            max_turns_limit=50,
        )

    def catalogue(self) -> TaskCatalogue:
        return self._catalogue

    def question(self, task: Task) -> Question:
        """The question behind a task (also for tools such as demonstrations and reports)."""
        if self.real:
            item = self._real.items.get(task.id)
            if item is None:
                raise UnknownTask(task.id)
            hop = Hop(item.question, None, "I will search for the question to find a passage that answers it.")
            return Question(
                task.category,
                item.question,
                item.answers,
                (hop,),
                f"The passages point to {item.answers[0]}, so the answer is {item.answers[0]}.",
            )
        parsed = parse_generated(task.id)
        if parsed is None:
            raise UnknownTask(task.id)
        return self.questions.question(*parsed)

    def start(self, task: Task) -> SearchQAEpisode:
        return SearchQAEpisode(self.question(task), self.retriever, self.end_on_answer)

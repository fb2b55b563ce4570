"""One SearchQA episode: the question, the agent's searches and answers, and the oracle.

A search returns the top k passages in Search-R1's `<information>` format and never ends the
episode. An answer scores exact match; with `end_on_answer` (Search-R1) it ends the episode either
way, without it (AgentGym) a wrong answer says so and the agent may try again until the turn limit.

Signals in `info` (the SDK's well-known keys): a search whose results hold a passage the question
needs says `verified: true` (generated questions: a hop's passage; real data, where hops have no
known passage: a passage that contains a gold answer). Every answer says `committed: true`, and
`verified` there is whether every needed passage had appeared in a result before it (real data: a
passage with a gold answer). Searches also list the returned document ids (`docs`), answers whether
they were `correct`.

The oracle follows the question's plan: it searches for the first hop whose passage has not yet
appeared in any result of this episode (the agent's own searches count), then answers. So it
finishes from any state, also after the agent searched on its own or answered wrongly.
"""

from __future__ import annotations

from gymwire.env_servers.sdk import Episode, StepOutcome, hash_state
from gymwire.env_servers.sdk.environment import INFO_COMMITTED, INFO_VERIFIED
from gymwire.env_servers.searchqa import grammar
from gymwire.env_servers.searchqa.bm25 import Hit
from gymwire.env_servers.searchqa.questions import Question
from gymwire.env_servers.searchqa.retrieval import Retriever


class SearchQAEpisode(Episode):
    def __init__(self, question: Question, retriever: Retriever, end_on_answer: bool = True):
        self.question = question
        self.retriever = retriever
        self.end_on_answer = end_on_answer
        self.seen_docs: set[int] = set()
        self.searched: set[str] = set()
        self.solved = False
        self.failed = False  # a wrong answer ended the episode (end_on_answer)
        self.needed = {hop.doc for hop in question.hops if hop.doc is not None}
        self.answer_seen = False  # real data: a retrieved passage held a gold answer

    def reset(self) -> str:
        return f"Question: {self.question.text}"

    def step(self, text: str) -> StepOutcome:
        action = grammar.parse_turn(text)
        if action is None:
            return StepOutcome(grammar.INVALID, action_valid=False)
        if not action.content:
            return StepOutcome(grammar.empty_tag(action.kind), action_valid=False, parsed_action=str(action))
        if action.kind == "search":
            hits = self.retriever.search(action.content)
            self.searched.add(action.content)
            self.seen_docs.update(hit.doc for hit in hits)
            docs = [self.retriever.documents.doc_id(hit.doc) for hit in hits]
            info: dict = {"docs": docs}
            if self._finds_needed(hits):
                info[INFO_VERIFIED] = True
            return StepOutcome(self.retriever.show(hits), parsed_action=str(action), info=info)
        correct = grammar.exact_match(action.content, self.question.answers)
        info = {"correct": correct, INFO_COMMITTED: True, INFO_VERIFIED: self._checked()}
        if correct:
            self.solved = True
            return StepOutcome(
                grammar.CORRECT, reward=1.0, terminated=True, success=True, parsed_action=str(action), info=info
            )
        self.failed = self.end_on_answer
        reply = grammar.WRONG_FINAL if self.end_on_answer else grammar.WRONG_RETRY
        return StepOutcome(reply, terminated=self.end_on_answer, parsed_action=str(action), info=info)

    def _finds_needed(self, hits: list[Hit]) -> bool:
        """Whether these results hold a passage the question needs (and remember a gold answer seen)."""
        if self.needed:
            return any(hit.doc in self.needed for hit in hits)
        golds = [f" {grammar.normalize_answer(a)} " for a in self.question.answers]
        found = any(
            g.strip() and g in f" {grammar.normalize_answer(self.retriever.documents.contents(hit.doc))} "
            for hit in hits
            for g in golds
        )
        self.answer_seen |= found
        return found

    def _checked(self) -> bool:
        """Whether the results so far held every passage the question needs (real data: a gold answer)."""
        return self.needed <= self.seen_docs if self.needed else self.answer_seen

    def state_key(self) -> str:
        """The passages retrieved so far and how the answering stands. The queries that retrieved them are
        left out: another query that brings back the same passages leaves the agent as informed. A wrong
        answer that lets the agent retry changes nothing."""
        answer = "correct" if self.solved else "wrong" if self.failed else ""
        return hash_state({"retrieved": sorted(self.seen_docs), "answer": answer})

    def expert_action(self) -> str | None:
        """The oracle's next turn: `Thought: ...` then one `<search>` or `<answer>` tag."""
        if self.solved:
            return None
        for hop in self.question.hops:
            done = hop.doc in self.seen_docs if hop.doc is not None else hop.query in self.searched
            if not done:
                return f"Thought: {hop.thought}\n<search>{hop.query}</search>"
        return f"Thought: {self.question.conclusion}\n<answer>{self.question.answers[0]}</answer>"

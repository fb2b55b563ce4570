"""One SearchQA episode: the question, the agent's searches and answers, and the oracle.

A search returns the top k passages in Search-R1's `<information>` format and never ends the
episode. An answer scores exact match; with `end_on_answer` (Search-R1) it ends the episode either
way, without it (AgentGym) a wrong answer says so and the agent may try again until the turn limit.

The oracle follows the question's plan: it searches for the first hop whose passage has not yet
appeared in any result of this episode (the agent's own searches count), then answers. So it
finishes from any state, also after the agent searched on its own or answered wrongly.
"""

from __future__ import annotations

from gymwire.env_servers.sdk import Episode, StepOutcome
from gymwire.env_servers.searchqa import grammar
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
            return StepOutcome(self.retriever.show(hits), parsed_action=str(action), info={"docs": docs})
        correct = grammar.exact_match(action.content, self.question.answers)
        if correct:
            self.solved = True
            return StepOutcome(grammar.CORRECT, reward=1.0, terminated=True, success=True, parsed_action=str(action),
                               info={"correct": True})
        reply = grammar.WRONG_FINAL if self.end_on_answer else grammar.WRONG_RETRY
        return StepOutcome(reply, terminated=self.end_on_answer, parsed_action=str(action), info={"correct": False})

    def expert_action(self) -> str | None:
        """The oracle's next turn: `Thought: ...` then one `<search>` or `<answer>` tag."""
        if self.solved:
            return None
        for hop in self.question.hops:
            done = hop.doc in self.seen_docs if hop.doc is not None else hop.query in self.searched
            if not done:
                return f"Thought: {hop.thought}\n<search>{hop.query}</search>"
        return f"Thought: {self.question.conclusion}\n<answer>{self.question.answers[0]}</answer>"

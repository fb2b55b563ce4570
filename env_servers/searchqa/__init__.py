"""SearchQA: answer questions by searching a corpus with `<search>` and `<answer>` tags (Search-R1 style).

Modules: names (invented names, twins), knowledge (the seeded fictional graph), passages (wiki-style
text), questions (single/bridge/comparison/three-hop questions with the oracle's plan), bm25 (the
index), store (text store, result format), cache (on-disk index cache), retrieval (the search engine),
real (FlashRAG-style QA and corpus files), grammar (parser, scoring, replies), tasks (ids, tiers,
splits), episode (one episode and the oracle), environment (the gymwire `Environment`).
"""

from gymwire.env_servers.searchqa.environment import SearchQAEnvironment

__all__ = ["SearchQAEnvironment"]

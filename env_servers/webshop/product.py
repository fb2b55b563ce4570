"""One product as the pages and the reward see it, and the interface every product source offers.

Field names follow the original's cleaned product (Title, BulletPoints, Description, Attributes,
options, query, category, product_category) in snake case. A source is either the generated
catalogue (rows rendered on demand) or the original product files (stored on disk); both serve
products by index, so nothing holds a million Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Review:
    title: str
    score: str
    body: str


@dataclass(frozen=True)
class Product:
    asin: str
    title: str
    price: float  # what the reward compares with the goal's cap
    price_tag: str  # what the pages show: "$12.99" or "$10.99 to $20.99"
    options: dict[str, tuple[str, ...]]  # option name -> values, both lower case, in page order
    attributes: tuple[str, ...]  # hidden from the agent; the reward matches goal attributes against them
    bullets: tuple[str, ...]  # the Features sub-page
    description: str
    query: str  # the search query the product was collected under (type reward)
    category: str  # department, e.g. "fashion"
    product_category: str  # "A › B › C" path (type reward)
    rating: str = "N.A."
    reviews: tuple[Review, ...] = field(default=())

    def index_text(self) -> str:
        """What the search index holds for a generated product: title, attributes, description and
        features. Option values are left out on purpose: which colours or sizes a product offers is
        found only on its page, so choosing among same-type results takes clicking."""
        return " ".join((self.title, " ".join(self.attributes), self.description, " ".join(self.bullets)))


class ProductSource(Protocol):
    """Products by position 0..len-1, and the position of an ASIN."""

    def __len__(self) -> int: ...

    def product(self, index: int) -> Product: ...

    def index_of(self, asin: str) -> int | None: ...

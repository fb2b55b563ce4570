"""WebShop: find, customise and buy the product an instruction describes, in a text web store.

Modules: vocabulary (types, attributes, options), generator (the catalogue as numpy rows), render
(product text from a row), store (catalogues built once on disk), search (BM25 with tantivy),
real_data / jsonstream / real_tasks (the original product files and their goals), goals
(instructions and price caps), matching (fuzzy and colour rules), reward (the original's reward),
shop (pages and actions), oracle (the expert), tasks / generated_tasks (ids, tiers, splits),
environment (the gymwire `Environment`).
"""

from gymwire.env_servers.webshop.environment import WebShopEnvironment

__all__ = ["WebShopEnvironment"]

"""Image build step: load the environment once, exactly as the server will, so its data is built now.

Loading an environment generates its tasks and builds its on-disk caches (webshop: the catalogue rows
and the tantivy index; searchqa: the corpus and its BM25 index) under $XDG_CACHE_HOME. The server in
the image reads the same $GYMWIRE_ENV and $GYMWIRE_OPTIONS, so the caches are keyed identically and
it starts in seconds instead of indexing on every container start. Environments without a disk cache
(babyai, textcraft) are still loaded: a missing dependency then fails the build, not the first start.
"""

from __future__ import annotations

import os
import sys
import time

from gymwire.env_servers.registry import load_environment, parse_options


def main() -> int:
    name = os.environ["GYMWIRE_ENV"]
    options = parse_options(os.environ.get("GYMWIRE_OPTIONS", "").split())
    started = time.perf_counter()
    env = load_environment(name, options)
    try:
        info = env.describe()
        tasks = len(env.catalogue())  # task lists too, where an environment builds them lazily
        seconds = time.perf_counter() - started
        print(
            f"prepared {info.name} ({tasks} tasks) with options {options or '{}'} in {seconds:.1f} s; "
            f"cache {os.environ.get('XDG_CACHE_HOME', '~/.cache')}",
            flush=True,
        )
    finally:
        env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

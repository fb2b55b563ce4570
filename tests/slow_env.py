"""An environment that takes a while to load, to test readiness reporting over the wire."""

import time

from gymwire.env_servers.reference import GuessEnvironment


def SlowLoadingEnvironment(delay: float = 3.0) -> GuessEnvironment:  # noqa: N802 - used as a factory by name
    time.sleep(delay)
    return GuessEnvironment()

"""The reference environment shipped with the SDK."""

from gymwire.env_servers.reference.guess import GuessEnvironment

__all__ = ["GuessEnvironment"]

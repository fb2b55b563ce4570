"""Clients for gymwire servers: sync and asyncio, a pool over many addresses, a Gymnasium adapter."""

from gymwire.env_servers import grpc_io  # noqa: F401  (before anything imports grpc)

# isort: split
from gymwire.client.aio import AsyncEnvClient, AsyncEpisode
from gymwire.client.connection import ChannelOptions, EpisodeAborted, GymwireError
from gymwire.client.pool import EnvPool
from gymwire.client.sync import EnvClient, Episode

__all__ = [
    "AsyncEnvClient",
    "AsyncEpisode",
    "ChannelOptions",
    "EnvClient",
    "EnvPool",
    "Episode",
    "EpisodeAborted",
    "GymwireError",
]

"""BabyAI (minigrid) as a gymwire text environment: AgentGym's observations, macro actions and levels."""

from gymwire.env_servers.babyai.environment import BabyAIEnvironment, BabyAIEpisode

__all__ = ["BabyAIEnvironment", "BabyAIEpisode"]

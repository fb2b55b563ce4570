"""gymwire servers in a SkyRL-train run (the `skyrl` package, `skyrl.train`).

SkyRL-train builds its config from dataclasses and refuses any key they do not declare, and its
generator gives each environment `getattr(cfg.environment.skyrl_gym, <env_class>, {})` as its
`env_config`. `GymwireSkyRLTrainConfig` declares gymwire's section there, so a run names its servers
on SkyRL's own command line:

    python -m skyrl.train.entrypoints.main_base \\
        trainer.override_entrypoint=gymwire.integrations.skyrl_train \\
        environment.env_class=gymwire \\
        'environment.skyrl_gym.gymwire.servers=[localhost:50051,localhost:50052]' \\
        data.train_data=[...] trainer.policy.model.path=...

`servers` is a list of addresses or environment -> address(es); `system_prompt` is optional. SkyRL's
entrypoint hands the command line to `main` below, which parses it with this config and runs SkyRL's
own experiment, with the "gymwire" environment registered in the worker that plays the episodes.
The dataset rows name their task in `extra_info.gymwire` (see `gymwire.integrations.skyrl`).
"""

# No `from __future__ import annotations`: SkyRL's loader reads the field types to build the nested
# sections, and a string annotation would leave them plain dicts.

import sys
from dataclasses import dataclass, field
from typing import Any

from skyrl.train.config import BaseConfig, EnvironmentConfig, SkyRLGymConfig, SkyRLTrainConfig

from . import skyrl as _registers_the_env  # noqa: F401

__all__ = ["GymwireEnvConfig", "GymwireSkyRLTrainConfig", "main"]


@dataclass
class GymwireEnvConfig(BaseConfig):
    servers: list[str] | dict[str, Any] | None = None
    system_prompt: str | None = None


@dataclass
class GymwireSkyRLGymConfig(SkyRLGymConfig):
    gymwire: GymwireEnvConfig = field(default_factory=GymwireEnvConfig)


@dataclass
class GymwireEnvironmentConfig(EnvironmentConfig):
    env_class: str = "gymwire"
    skyrl_gym: GymwireSkyRLGymConfig = field(default_factory=GymwireSkyRLGymConfig)


@dataclass
class GymwireSkyRLTrainConfig(SkyRLTrainConfig):
    environment: GymwireEnvironmentConfig = field(default_factory=GymwireEnvironmentConfig)


def _run(cfg: GymwireSkyRLTrainConfig) -> None:
    """SkyRL's `skyrl_entrypoint`, in a worker that has imported this module (so "gymwire" is registered)."""
    from skyrl.train.entrypoints.main_base import BasePPOExp

    BasePPOExp(cfg).run()


def main(argv: list[str] | None = None) -> None:
    """SkyRL's `main_base.main` with this config; `trainer.override_entrypoint` is SkyRL's dispatch
    key, not a config field, so it is left out of the parse."""
    import ray
    from skyrl.train.utils import validate_cfg
    from skyrl.train.utils.utils import initialize_ray

    args = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("trainer.override_entrypoint=")]
    cfg = GymwireSkyRLTrainConfig.from_cli_overrides(args)
    validate_cfg(cfg)
    initialize_ray(cfg)
    ray.get(ray.remote(num_cpus=1)(_run).remote(cfg))


if __name__ == "__main__":
    main()

"""Find an environment by name (the `gymwire.environments` entry points) or by `module:attribute`.

Third-party packages register their environments under that entry-point group; `gymwire serve NAME`
then finds them with no change to gymwire.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

import yaml

from gymwire.env_servers.sdk.environment import Environment

GROUP = "gymwire.environments"


def available() -> dict[str, str]:
    """Registered environment names and the object each points to."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs from the command line; values are read as YAML scalars (1, 0.5, true, text)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"option {pair!r} is not key=value")
        options[key.replace("-", "_")] = yaml.safe_load(value) if value else ""
    return options


def load_environment(spec: str, options: dict[str, Any] | None = None) -> Environment:
    """Build the environment named by `spec` with keyword `options`."""
    registered = available()
    target = registered.get(spec, spec)
    module_name, sep, attr = target.partition(":")
    if not sep:
        known = ", ".join(sorted(registered)) or "none"
        raise ValueError(f"unknown environment {spec!r}; registered: {known}; or give module:attribute")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        hint = f" (is the extra installed? pip install 'gymwire[{spec}]')" if spec in registered else ""
        raise ValueError(f"cannot load environment {spec!r} from {target!r}: {exc}{hint}") from exc
    env = factory(**(options or {}))
    if not isinstance(env, Environment):
        raise TypeError(f"{target} returned {type(env).__name__}, not a gymwire Environment")
    return env

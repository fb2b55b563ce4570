"""The package list, found rather than written: every package under each folder that pyproject.toml's
`[tool.setuptools] package-dir` maps into the `gymwire` namespace.

Everything else about the distribution is in pyproject.toml. setuptools' own `packages.find` cannot
put a prefix (`gymwire.`) in front of what it finds, hence this file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent


def gymwire_packages() -> list[str]:
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    packages = []
    for name, folder in mapping.items():
        packages.append(name)
        packages += [f"{name}.{sub}" for sub in find_packages(where=str(ROOT / folder))]
    return sorted(packages)


setup(packages=gymwire_packages())

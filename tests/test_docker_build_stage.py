"""The images build on a bare base: each compose service's build stage runs in a root without compilers.

The recipe replay (docker/replay-recipe.sh) installs on the host, whose make and gcc hide a recipe that
needs them (the alfworld extra's jericho and fast-downward-textworld come as source archives that
compile). docker/clean-root-build.py runs each service's build stage by chroot in a fresh debootstrap'd
Debian that has python3 and no compiler, honouring the stage's apt-get lines, then its runtime stage,
which must hold no build tool and must load every compiled file copied into it. Needs root,
debootstrap and network access to Debian's mirror and PyPI; skipped without the first two.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docker/clean-root-build.py"
spec = importlib.util.spec_from_file_location("clean_root_build", SCRIPT)
assert spec is not None and spec.loader is not None
clean_root = importlib.util.module_from_spec(spec)
spec.loader.exec_module(clean_root)

SERVICES = {n: s for n, s in yaml.safe_load((ROOT / "docker/compose.yaml").read_text())["services"].items()}
BUILD_PACKAGES = {"build-essential", "make", "cmake", "gcc", "g++", "cpp", "clang", "libc6-dev", "libc-dev"}
# trainer.Dockerfile's GPU runtime: Triton and FlashInfer compile kernels with the system compiler.
RUNTIME_ALLOWED = {"trainer.Dockerfile": {"gcc", "g++", "libc6-dev"}}

can_chroot = os.geteuid() == 0 and shutil.which("debootstrap") and shutil.which("unshare")
needs_root = pytest.mark.skipif(
    not can_chroot, reason="needs root, debootstrap and unshare (apt-get install debootstrap)"
)


def dockerfile(service: dict) -> Path:
    return (ROOT / "docker" / service["build"]["context"] / service["build"]["dockerfile"]).resolve()


def test_every_service_has_a_build_and_a_runtime_stage_with_its_args():
    for name, service in SERVICES.items():
        args = {k: str(v) for k, v in service["build"].get("args", {}).items()}
        stages = clean_root.stages(dockerfile(service), args)
        assert set(stages) == {"build", "runtime"}, name
        build_args = dict(r.partition("=")[::2] for w, r in stages["build"] if w == "ARG")
        for key, value in args.items():
            if key in build_args:
                assert build_args[key] == value, f"{name}: ARG {key}"
        assert any("pip install" in r for w, r in stages["build"] if w == "RUN"), name


def test_runtime_stages_install_no_build_tools():
    for name, service in SERVICES.items():
        path = dockerfile(service)
        runtime = clean_root.stages(path, {})["runtime"]
        installed = set().union(*(clean_root.apt_packages(r) for w, r in runtime if w == "RUN"))
        extra = (installed & BUILD_PACKAGES) - RUNTIME_ALLOWED.get(path.name, set())
        assert not extra, f"{name}: the runtime stage of {path.name} installs {sorted(extra)}"


def test_apt_packages_reads_install_lines():
    run = "apt-get update && apt-get install -y --no-install-recommends gcc g++ \\\n libc6-dev && rm -rf x"
    assert clean_root.apt_packages(run) == {"gcc", "g++", "libc6-dev"}


def reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=15).close()
    except urllib.error.HTTPError:
        return True  # the server answered
    except OSError:
        return False
    return True


def run_script(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@needs_root
@pytest.mark.slow
@pytest.mark.timeout(2400)
@pytest.mark.skipif(
    os.environ.get("GYMWIRE_IMAGE_BUILDS") != "1",
    reason="every image's build: ~25 min here (alfworld compiles for ~11); GYMWIRE_IMAGE_BUILDS=1 runs them",
)
@pytest.mark.parametrize("service", [n for n, s in SERVICES.items() if "build" in s])
def test_build_stage_runs_in_a_root_without_compilers(service):
    args = [service]
    index = SERVICES[service]["build"].get("args", {}).get("TORCH_INDEX_URL")
    if index and not reachable(index):
        # torch is a wheel on either index; what is checked here is what builds from source.
        print(f"{index} unreachable: torch from PyPI instead")
        args.append("--build-arg=TORCH_INDEX_URL=")
    done = run_script(*args, timeout=2300)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert f"{service}" in done.stdout and "ok (" in done.stdout.splitlines()[-1]


@needs_root
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_a_build_stage_without_build_tools_fails_there(tmp_path):
    # The recipe as it was before its build stage installed build-essential: jericho's setup runs make.
    recipe = (ROOT / "docker/env.Dockerfile").read_text()
    start = recipe.index("RUN apt-get update")
    end = recipe.index("\n", recipe.index("rm -rf /var/lib/apt/lists/*", start))
    bare = tmp_path / "env.Dockerfile"
    bare.write_text(recipe[:start] + recipe[end + 1 :])
    assert "build-essential" not in bare.read_text()
    done = run_script("alfworld", "--dockerfile", str(bare), timeout=1100)
    assert done.returncode == 1, done.stdout[-4000:]
    assert "FAIL: RUN exited" in done.stdout and "pip install" in done.stdout.splitlines()[-1]
    assert "'make'" in done.stdout + done.stderr  # FileNotFoundError: ... 'make'


@needs_root
def test_the_runtime_library_check_finds_a_missing_library():
    # libcurl needs libnghttp2, libssh2, ...: none of them is in the bare root.
    library = Path("/usr/lib/x86_64-linux-gnu/libcurl.so.4")
    if not library.exists():
        pytest.skip("no host libcurl.so.4 to probe with")
    root = clean_root.fresh_root("ldd-probe")
    try:
        assert not clean_root.compilers_in(root), "the clean root has a compiler"
        (root / "opt/probe").mkdir(parents=True)
        shutil.copy(library, root / "opt/probe/libcurl.so.4")
        missing = clean_root.unresolved_libraries(root, ["/opt/probe"])
        assert any("libnghttp2" in line for line in missing), missing
    finally:
        clean_root.remove_root(root)

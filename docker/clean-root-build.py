#!/usr/bin/env python3
"""Run each compose image's build stage in a clean root that has no compilers, then its runtime stage.

The recipe replay (docker/replay-recipe.sh) installs on the host, whose make and gcc hide a recipe
that needs them. Here the Dockerfile of each service in docker/compose.yaml is read and its stages are
run with that service's build args, by chroot, each in a fresh copy of a Debian bookworm minbase made
with debootstrap, holding what python:3.11-slim holds that matters here: python3 (and `python`), venv,
CA certificates, apt; no make, no cc, no c++ (checked before every stage). The build stage's RUN lines
run as written, apt-get lines included (from Debian's mirror), so a tool exists there only if the
recipe installs it; COPY lines copy from the build context (the repository less the Dockerfile's
.dockerignore, applied by docker/build_context.py as the builder does). Then the runtime stage's RUN
lines run in another fresh root and its `COPY --from=build` paths are copied from the build root: it
must hold no compiler (unless ALLOWED_RUNTIME_TOOLS says why), and in install mode every ELF file
copied (the built extensions, libraries and programs) must find its libraries there (ldd: no "not
found").

Two modes, per Dockerfile (MODES): "install" runs every RUN line as written (pip installs everything,
the environment's build step runs); "resolve" is for the trainer, whose torch and CUDA wheels are too
big to install here: each `/opt/venv/bin/pip install` runs with --dry-run --report, every distribution
it would take from a source archive is then built with `pip wheel --no-deps` in the same root, and the
RUN lines that need the installed packages are skipped. pip still downloads every wheel to read its
metadata (GBs for the trainers: minutes each).

    sudo docker/clean-root-build.py [SERVICE ...] [--dockerfile PATH] [--build-arg KEY=VALUE] [--keep]

Needs root (chroot, mounts in a private namespace), debootstrap, and network access to Debian's mirror
and PyPI. The base root is made once (~3 min) under $GYMWIRE_CLEAN_ROOT (default
/var/tmp/gymwire-clean-root) and reused. Exit 0 only if every service passed.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_context  # noqa: E402  (docker/build_context.py, beside this script)

REPO = Path(__file__).resolve().parent.parent
WORK = Path(os.environ.get("GYMWIRE_CLEAN_ROOT", "/var/tmp/gymwire-clean-root"))
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# python:3.11-slim has `python` and the venv module; python-is-python3 gives the first, as there
# (fast-downward-textworld's setup runs `python build.py`).
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
COMPILERS = ("make", "cc", "gcc", "c++", "g++", "clang", "cmake")
MODES = {"env.Dockerfile": "install", "trainer.Dockerfile": "resolve"}
# The GPU trainer's runtime compiler is not a build tool: Triton and FlashInfer compile kernels and
# their launchers with the system C compiler on first use, against the driver found at run time.
ALLOWED_RUNTIME_TOOLS = {"trainer": {"cc", "gcc", "c++", "g++"}}
# What a Docker RUN sees besides ARG and ENV values: python:3.11-slim's PATH, a UTF-8 locale.
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
}
HOST_CA = Path(os.environ.get("HOST_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
ROOT_CA = "/etc/gymwire-host-ca.crt"  # the host's bundle, for a proxy that inspects TLS


def note(message: str) -> None:
    print(f"== {message}", flush=True)


# --- Dockerfile reading -------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1]  # Docker drops the backslash and the line break
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def substitute(value: str, scope: dict[str, str]) -> str:
    """Dockerfile variable substitution: $VAR, ${VAR} (unset: empty)."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: scope.get(m.group(1), ""), value)


def env_pairs(rest: str, scope: dict[str, str]) -> dict[str, str]:
    return {k: substitute(v, scope) for k, _, v in (w.partition("=") for w in shlex.split(rest))}


def stages(dockerfile: Path, args: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions, with ARG values resolved into ("ARG", "NAME=value") entries."""
    globals_: dict[str, str] = {}
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for word, rest in instructions(dockerfile.read_text()):
        if word == "FROM":
            name = rest.split()[-1] if " AS " in rest.upper() else str(len(result))
            current = result.setdefault(name, [])
        elif word == "ARG":
            name, _, default = shlex.split(rest)[0].partition("=")  # ARG X="" is the empty string
            value = args.get(name, default if "=" in rest else globals_.get(name, ""))
            if current is None:
                globals_[name] = value
            else:
                current.append(("ARG", f"{name}={value}"))
        elif current is not None:
            current.append((word, rest))
    return result


def apt_packages(run: str) -> set[str]:
    """Package names an `apt-get install` in this RUN line asks for (options dropped)."""
    found: set[str] = set()
    for match in re.finditer(r"apt(?:-get)?\s+install\s+([^;&|)]*)", run):
        found |= {w for w in match.group(1).split() if not w.startswith("-") and w != "\\"}
    return found


# --- the clean root ----------------------------------------------------------------------------


def base_root() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    with open(WORK / "base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one debootstrap at a time; the others wait and reuse it
        return make_base()


def make_base() -> Path:
    base = WORK / "base"
    stamp = base / ".gymwire-base"
    if stamp.exists() and stamp.read_text() == BASE_PACKAGES:
        return base
    if shutil.which("debootstrap") is None:
        raise SystemExit("debootstrap is not installed (apt-get install debootstrap)")
    shutil.rmtree(base, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    note(f"debootstrap bookworm minbase + {BASE_PACKAGES} -> {base}")
    started = time.monotonic()
    log = WORK / "debootstrap.log"
    with log.open("w") as f:
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(base), MIRROR],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        raise SystemExit(f"debootstrap failed (log: {log})")
    subprocess.run(["chroot", str(base), "apt-get", "clean"], check=True)
    for cache in ("var/lib/apt/lists", "var/cache/apt"):
        for item in (base / cache).glob("*"):
            if item.is_file():
                item.unlink()
    stamp.write_text(BASE_PACKAGES)
    note(f"base root made in {time.monotonic() - started:.0f} s")
    return base


def fresh_root(name: str) -> Path:
    root = WORK / f"{name}-{os.getpid()}"  # runs side by side (test workers) never share a root
    remove_root(root)
    subprocess.run(["cp", "-a", "--reflink=auto", str(base_root()), str(root)], check=True)
    # Network only: the host's DNS and CA bundle (pip reaches PyPI through whatever the host does).
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    if HOST_CA.exists():
        shutil.copy(HOST_CA, root / ROOT_CA.lstrip("/"))
    return root


def remove_root(root: Path) -> None:
    # The mounts live in each command's own namespace; never delete through one that leaked.
    if any(os.path.ismount(root / m) for m in ("dev", "proc")):
        raise SystemExit(f"{root}: /dev or /proc still mounted, not removing it")
    shutil.rmtree(root, ignore_errors=True)


def compilers_in(root: Path) -> set[str]:
    dirs = ("usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin")
    return {tool for tool in COMPILERS for d in dirs if os.path.lexists(root / d / tool)}


def in_root(root: Path, command: str, env: dict[str, str], workdir: str = "/") -> int:
    """`/bin/sh -c command` in root, as a RUN line: a private mount namespace holds /proc and /dev."""
    environment = [f"{k}={v}" for k, v in {**BASE_ENV, **env}.items()]
    inner = (
        'mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && '
        'root=$1 && shift && exec chroot "$root" /usr/bin/env -i "$@"'
    )
    script = f"mkdir -p {shlex.quote(workdir)} && cd {shlex.quote(workdir)} && {command}"
    argv = ["unshare", "--mount", "--fork", "sh", "-c", inner, "-", str(root), *environment, "/bin/sh", "-c", script]
    return subprocess.run(argv, stdin=subprocess.DEVNULL).returncode


def copy_in(src: Path, dest: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)


# --- one stage -----------------------------------------------------------------------------------


class StageFailed(Exception):
    pass


def run_stage(
    root: Path, steps: list[tuple[str, str]], mode: str, build_root: Path | None = None, context: Path = REPO
) -> dict[str, str]:
    """Run a stage's ARG/ENV/WORKDIR/COPY/RUN in root, COPY from context (or, --from, the build root).
    Returns the stage's final environment."""
    scope: dict[str, str] = {}
    env: dict[str, str] = {}
    workdir = "/"
    reports = 0
    for word, rest in steps:
        if word == "ARG":
            name, _, value = rest.partition("=")
            scope[name] = value
        elif word == "ENV":
            pairs = env_pairs(rest, {**BASE_ENV, **scope, **env})
            env.update(pairs)
            scope.update(pairs)
        elif word == "WORKDIR":
            workdir = os.path.join(workdir, substitute(rest, scope))
        elif word == "COPY":
            words = [w for w in shlex.split(rest) if not w.startswith("--")]
            options = [w for w in shlex.split(rest) if w.startswith("--")]
            *sources, dest = (substitute(w, scope) for w in words)
            dest = os.path.join(workdir, dest)
            origin = context
            if any(o.startswith("--from=") for o in options):
                if build_root is None:
                    raise StageFailed(f"COPY {rest}: no build root")
                origin = build_root
            for source in sources:
                if not (origin / source.lstrip("/")).exists():
                    if mode == "resolve" and origin == build_root:
                        note(f"skipped (resolve mode: the build stage made no {source}): COPY {rest}")
                        continue
                    raise StageFailed(f"COPY {rest}: no {source}")
                target = root / dest.lstrip("/")
                if dest.endswith("/") or len(sources) > 1:
                    target = target / Path(source).name
                copy_in(origin / source.lstrip("/"), target)
        elif word == "RUN":
            run_env = {**scope, **env}
            needs_packages = "/opt/venv/bin/python " in rest and "pip" not in rest
            if mode == "resolve" and needs_packages:
                note(f"skipped (resolve mode: the packages are not installed): RUN {rest[:90]}")
                continue
            if mode == "resolve":
                # On the command line, not as PIP_DRY_RUN: that would reach the pip that installs
                # build requirements for an sdist, which would then install none.
                def dry(match: re.Match) -> str:
                    nonlocal reports
                    reports += 1
                    return f"{match.group(0)} --dry-run --report /tmp/pip-report-{reports}.json"

                rest = re.sub(r"/opt/venv/bin/pip install", dry, rest)
            note(f"RUN {' '.join(rest.split())[:160]}")
            status = in_root(root, rest, run_env | {"PIP_CERT": ROOT_CA, "SSL_CERT_FILE": ROOT_CA}, workdir)
            if status != 0:
                raise StageFailed(f"RUN exited {status}: {' '.join(rest.split())[:200]}")
    if mode == "resolve" and build_root is None:  # the build stage
        build_source_archives(root, reports, {**scope, **env})
    return env


def build_source_archives(root: Path, reports: int, env: dict[str, str]) -> None:
    """Resolve mode: build every distribution the dry runs would take from a source archive."""
    sources: list[tuple[str, str]] = []
    resolved = 0
    for n in range(1, reports + 1):
        report = root / f"tmp/pip-report-{n}.json"
        if not report.exists():
            continue  # that RUN line's pip install did not run (a shell branch not taken)
        items = json.loads(report.read_text())["install"]
        resolved += len(items)
        for item in items:
            url = item["download_info"]["url"]
            if not url.endswith(".whl") and not url.startswith("file:///src"):
                sources.append((f"{item['metadata']['name']}=={item['metadata']['version']}", url))
    if not resolved:
        raise StageFailed("no pip install resolved anything")
    note(f"{resolved} distributions resolved; from source archives: {', '.join(n for n, _ in sources) or 'none'}")
    for name, url in sources:
        command = f"/opt/venv/bin/pip wheel --no-deps -w /tmp/wheels {shlex.quote(url)}"
        if in_root(root, command, env | {"PIP_CERT": ROOT_CA, "SSL_CERT_FILE": ROOT_CA}) != 0:
            raise StageFailed(f"pip wheel {name} failed")


def unresolved_libraries(root: Path, paths: list[str]) -> list[str]:
    """ELF files under paths (inside root) whose libraries ldd cannot find in root."""
    elves = []
    for path in paths:
        for file in (root / path.lstrip("/")).rglob("*"):
            if file.is_file() and not file.is_symlink():
                with file.open("rb") as f:
                    if f.read(4) == b"\x7fELF":
                        elves.append("/" + str(file.relative_to(root)))
    listing = root / "tmp/elf-files"
    listing.write_text("\n".join(elves) + "\n")
    out = root / "tmp/ldd-missing"
    check = (
        'while IFS= read -r f; do ldd "$f" 2>/dev/null | grep "not found" | sed "s|^|$f: |"; done'
        " < /tmp/elf-files > /tmp/ldd-missing"
    )
    in_root(root, check, {})
    note(f"ldd on {len(elves)} ELF files copied into the runtime stage")
    return [line for line in out.read_text().splitlines() if line.strip()]


# --- one service ---------------------------------------------------------------------------------


def dockerignore(dockerfile: Path) -> Path:
    """The .dockerignore beside the Dockerfile; for one elsewhere without its own (--dockerfile, a
    variant of a recipe), the one of the recipe of the same name in docker/."""
    beside = Path(f"{dockerfile}.dockerignore")
    return beside if beside.exists() else REPO / "docker" / f"{dockerfile.name}.dockerignore"


def check_service(name: str, service: dict, dockerfile: Path | None, overrides: dict[str, str], keep: bool) -> str:
    build = service["build"]
    path = dockerfile or (REPO / "docker" / build["context"] / build["dockerfile"]).resolve()
    args = {k: str(v) for k, v in (build.get("args") or {}).items()} | overrides
    mode = MODES.get(path.name, "install")
    all_stages = stages(path, args)
    build_stage, runtime_stage = all_stages["build"], all_stages["runtime"]
    started = time.monotonic()
    roots = []
    try:
        note(f"{name}: build stage of {path.name} ({mode} mode), args {args}")
        root = fresh_root(f"{name}-build")
        roots.append(root)
        present = compilers_in(root)
        if present:
            raise StageFailed(f"the clean root is not clean: {sorted(present)}")
        context = WORK / f"{name}-context-{os.getpid()}"
        roots.append(context)
        shutil.rmtree(context, ignore_errors=True)
        ignorefile = dockerignore(path)
        count = build_context.copy_context(path, context, ignorefile=ignorefile)
        note(f"{name}: build context: {count} files (the repository less {ignorefile.relative_to(REPO)})")
        run_stage(root, build_stage, mode, context=context)
        note(f"{name}: runtime stage")
        runtime = fresh_root(f"{name}-runtime")
        roots.append(runtime)
        run_stage(runtime, runtime_stage, mode, build_root=root, context=context)
        tools = compilers_in(runtime) - ALLOWED_RUNTIME_TOOLS.get(name, set())
        if tools:
            raise StageFailed(f"the runtime image holds build tools: {sorted(tools)}")
        if mode == "install":
            copied = [shlex.split(r)[-2] for w, r in runtime_stage if w == "COPY" and "--from=" in r]
            missing = unresolved_libraries(runtime, copied)
            if missing:
                raise StageFailed("libraries missing at run time:\n  " + "\n  ".join(missing[:20]))
        return f"ok ({mode}; {time.monotonic() - started:.0f} s)"
    except StageFailed as failure:
        return f"FAIL: {failure}"
    finally:
        if not keep:
            for r in roots:
                remove_root(r)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*", help="compose services (default: all, every profile)")
    parser.add_argument("--dockerfile", type=Path, help="use this Dockerfile instead of the service's")
    parser.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a build arg of every service checked (e.g. TORCH_INDEX_URL= where that index is unreachable)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the roots (under $GYMWIRE_CLEAN_ROOT)")
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (chroot and mounts)", file=sys.stderr)
        return 2
    services = yaml.safe_load((REPO / "docker/compose.yaml").read_text())["services"]
    names = options.services or [n for n, s in services.items() if "build" in s]
    overrides = dict(a.partition("=")[::2] for a in options.build_arg)
    results = {n: check_service(n, services[n], options.dockerfile, overrides, options.keep) for n in names}
    print()
    for name, result in results.items():
        print(f"{name:12} {result}")
    return 0 if all(r.startswith("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

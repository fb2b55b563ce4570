#!/usr/bin/env python3
"""A Dockerfile's build context, as the builder sees it: the repository less what its .dockerignore lists.

The images copy the source tree whole (`COPY . ./`) and leave things out by `<Dockerfile>.dockerignore`
(BuildKit reads it beside the Dockerfile; podman gets `--ignorefile`), so no recipe names the package's
folders one by one. The checks that run the recipes without a Docker engine (docker/replay-recipe.sh,
docker/clean-root-build.py, tests/test_packaging.py) copy the context through here, with the builder's
rules: a pattern is matched against each path and each of its parent folders (`*` and `?` within one
path part, `**` across any number of them), `!` makes an exception, and the last pattern that matches
a path decides.

    docker/build_context.py DOCKERFILE DEST     copy DOCKERFILE's build context (the repository) into DEST
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

Pattern = tuple[bool, "re.Pattern[str]", str]  # (exception, regex, the pattern's text)


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out += "(.*/)?"  # `**/` also matches no folder at all
                i += 1
            else:
                out += ".*"
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c))
        i += 1
    return re.compile(f"^{out}$")


def read_patterns(ignorefile: Path) -> list[Pattern]:
    patterns: list[Pattern] = []
    if not ignorefile.exists():
        return patterns
    for line in ignorefile.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        text = line[1:].strip() if exception else line
        text = "/".join(p for p in text.split("/") if p not in ("", ".")) or "."
        patterns.append((exception, _regex(text), text))
    return patterns


def ignored(path: str, patterns: list[Pattern]) -> bool:
    """Whether the builder leaves `path` (relative, '/'-separated) out of the context."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for exception, regex, _ in patterns:
        if exception != result:
            continue  # cannot change the outcome
        if any(regex.match(c) for c in candidates):
            result = not exception
    return result


def _may_hold_exceptions(folder: str, patterns: list[Pattern]) -> bool:
    """Whether an exception pattern could bring back something inside an ignored folder."""
    for exception, _, text in patterns:
        if exception:
            literal = re.split(r"[*?\[]", text, maxsplit=1)[0]
            if literal.startswith(folder + "/") or (folder + "/").startswith(literal):
                return True
    return False


def context_files(dockerfile: Path, repo: Path = REPO, ignorefile: Path | None = None) -> Iterator[str]:
    """The files of dockerfile's build context (the repository root), relative and '/'-separated;
    ignorefile: default <dockerfile>.dockerignore."""
    patterns = read_patterns(ignorefile or Path(f"{dockerfile}.dockerignore"))

    def walk(folder: Path) -> Iterator[str]:
        for entry in sorted(folder.iterdir()):
            rel = entry.relative_to(repo).as_posix()
            if entry.is_dir() and not entry.is_symlink():
                if not ignored(rel, patterns) or _may_hold_exceptions(rel, patterns):
                    yield from walk(entry)
            elif not ignored(rel, patterns):
                yield rel

    yield from walk(repo)


def copy_context(dockerfile: Path, dest: Path, repo: Path = REPO, ignorefile: Path | None = None) -> int:
    """Copy dockerfile's build context into dest; returns how many files."""
    count = 0
    for rel in context_files(dockerfile, repo, ignorefile):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, target, follow_symlinks=False)
        count += 1
    return count


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    n = copy_context(Path(sys.argv[1]).resolve(), Path(sys.argv[2]))
    print(f"{n} files of {sys.argv[1]}'s build context copied to {sys.argv[2]}")

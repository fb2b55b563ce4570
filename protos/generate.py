"""Generate the Python protobuf/gRPC stubs from protos/ (run after editing a .proto).

`python protos/generate.py --check` regenerates into a temporary folder and fails when the
checked-in stubs differ, so stale stubs never land.

`python protos/generate.py --release 0.2.0` stores the contract as released (a buf image,
protos/releases/v0.2.0.binpb); CI runs `buf breaking` against the newest one, so a released
field, number or method never changes under a client.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE = PROTO_ROOT / "gymwire" / "v1"
GENERATED = ("environment_pb2.py", "environment_pb2.pyi", "environment_pb2_grpc.py")
RELEASES = PROTO_ROOT / "releases"


def generate(out: Path) -> None:
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        str(PACKAGE / "environment.proto"),
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")


def release(version: str) -> Path:
    """Build the contract into releases/v<version>.binpb (no source info: only the descriptors matter)."""
    buf = shutil.which("buf")
    if buf is None:
        sys.exit("buf not found: pip install -e '.[dev]' (the buf-bin package)")
    RELEASES.mkdir(exist_ok=True)
    image = RELEASES / f"v{version}.binpb"
    subprocess.run([buf, "build", "--exclude-source-info", "-o", str(image)], cwd=PROTO_ROOT, check=True)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the checked-in stubs are stale")
    parser.add_argument("--release", metavar="VERSION", help="store the contract as released under this version")
    args = parser.parse_args()
    if args.release:
        print(f"released contract: {release(args.release)}")
        return
    check = args.check
    if not check:
        generate(PROTO_ROOT)
        return
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = [n for n in GENERATED if not filecmp.cmp(Path(tmp, "gymwire/v1", n), PACKAGE / n, shallow=False)]
    if stale:
        sys.exit(f"stale generated stubs: {', '.join(stale)}; run: python protos/generate.py")
    print("generated stubs are up to date")


if __name__ == "__main__":
    main()

"""Generate the Python protobuf/gRPC stubs from protos/ (run after editing a .proto).

`python protos/generate.py --check` regenerates into a temporary folder and fails when the
checked-in stubs differ, so stale stubs never land.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE = PROTO_ROOT / "gymwire" / "v1"
GENERATED = ("environment_pb2.py", "environment_pb2.pyi", "environment_pb2_grpc.py")


def generate(out: Path) -> None:
    include = Path(protoc.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
            f"--grpc_python_out={out}", str(PACKAGE / "environment.proto")]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the checked-in stubs are stale")
    check = parser.parse_args().check
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

"""Benchmarks that print a table and write JSON (never timed assertions in the test suite)."""

import argparse
import json


def write_rows(args: argparse.Namespace, rows: list[dict]) -> None:
    """The run's arguments and table rows as JSON at args.out."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows}, indent=2))

"""Subcommands contributed by optional parts (trainer, benchmarks), added only when they import."""

from __future__ import annotations

import argparse
import importlib

# Each module exposes add_parser(subparsers); a missing extra simply leaves its commands out.
EXTENSION_MODULES = ("gymwire.trainer.cli",)


def register_extensions(parser: argparse.ArgumentParser) -> None:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in EXTENSION_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        module.add_parser(sub)

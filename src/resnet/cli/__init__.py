"""The ``resnet`` command line: it parses arguments and calls one library function per command.

Each sub-command lives in its own module with ``register(subparsers)``; bad input anywhere ends
in a one-line ``resnet: error: ...`` and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Optional

from resnet.errors import ResnetError

__all__ = ["main", "build_parser"]

COMMAND_MODULES = (
    "resnet.cli.models",
    "resnet.cli.train",
    "resnet.cli.experiments",
    "resnet.cli.detect",
    "resnet.cli.deploy",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnet",
        description="Residual networks: build, train, evaluate, explain and export them.",
    )
    from resnet import __version__

    parser.add_argument("--version", action="version", version=f"resnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on bad usage and 0 on --help
        return int(exit_.code or 0)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ResnetError as error:
        print(f"resnet: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("resnet: interrupted", file=sys.stderr)
        return 130

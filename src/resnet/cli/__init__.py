"""The ``resnet`` command line: it parses arguments and calls one library function per command.

Each sub-command lives in its own module with ``register(subparsers)``; bad input anywhere ends
in a one-line ``resnet: error: ...`` and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Optional

from resnet.errors import ResnetError

__all__ = ["main", "build_parser", "one_line_errors"]

COMMAND_MODULES = (
    "resnet.cli.models",
    "resnet.cli.train",
    "resnet.cli.experiments",
    "resnet.cli.detect",
    "resnet.cli.deploy",
)


class _Parser(argparse.ArgumentParser):
    """A parser whose commands take their file arguments among the options, in any order
    (``resnet predict --checkpoint C a.png --topk 3 b.png``): argparse's intermixed parsing for
    every command without subcommands, where plain argparse stops at ``b.png`` with
    "unrecognized arguments". Subcommand parsers are built from this class too."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):  # noqa: D102 (argparse's own)
        positionals = self._get_positional_actions()
        nested = any(a.nargs in (argparse.PARSER, argparse.REMAINDER) for a in positionals)
        separated = args is not None and "--" in args  # "--": the user ordered them already
        if self._intermixing or not positionals or nested or separated:
            return super().parse_known_args(args, namespace)
        self._intermixing = True  # parse_known_intermixed_args calls back into this method
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Every failure ends in one ``resnet: error: ...`` line and exit code 2: the package's own
    errors, and those of the machine (a read-only or full disk, an output path that is a
    folder, a file that is not UTF-8). ``--debug`` (or ``RESNET_DEBUG=1``) shows the traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("RESNET_DEBUG", "") not in ("", "0")
    argv = [arg for arg in argv if arg != "--debug"]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits 2 on bad usage and 0 on --help
        return int(exit_.code or 0)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return one_line_errors(lambda: args.func(args), debug=debug)


def one_line_errors(
    command: Callable[[], Any], *, prog: str = "resnet", debug: Optional[bool] = None
) -> int:
    """Run ``command`` and return its exit code; any failure becomes one ``PROG: error: ...``
    line and exit code 2 (130 for Ctrl-C), as in ``main``. The scripts under ``bench/`` run
    their ``main`` through it too. ``debug`` (default: ``RESNET_DEBUG=1``) re-raises instead.
    """
    if debug is None:
        debug = os.environ.get("RESNET_DEBUG", "") not in ("", "0")
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _one_line_warning(prog)
            return int(command() or 0)
    except BrokenPipeError:
        return _closed_pipe()
    except Exception as error:
        if debug:
            raise
        return _report(error, prog)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def _one_line_warning(prog: str) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints ``PROG: warning: message`` on one line, without
    Python's file name, line number and source line, which mean nothing to a CLI user."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        print(f"{prog}: warning: {text}", file=sys.stderr if file is None else file)

    return show


def _report(error: Exception, prog: str = "resnet") -> int:
    """One line for ``error``; exit 130 for Ctrl-C during a run, 2 for everything else."""
    from resnet.run import RunInterrupted

    if isinstance(error, RunInterrupted):
        print(f"{prog}: {error}", file=sys.stderr)
        return 130
    if isinstance(error, ResnetError):
        message = str(error)
    elif isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        reason = error.strerror or str(error)
        message = (
            f"{where}{reason}; check that the path is right and writable, and the disk has space"
        )
    elif isinstance(error, UnicodeError):
        message = f"a text file is not UTF-8 ({error}); save it as UTF-8"
    else:
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        hint = "run with --debug" if prog == "resnet" else "set RESNET_DEBUG=1"
        message = f"{type(error).__name__}: {first} ({hint} for the traceback)"
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _closed_pipe() -> int:
    # `resnet models | head`: the reader left. Exit quietly as the Unix tools do, and point
    # stdout at /dev/null so the interpreter's final flush does not raise again.
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE

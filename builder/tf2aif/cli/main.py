"""The `tf2aif` command line: argument parsing, rich output and exit codes, nothing else.

Subsystems contribute their own subcommands through a `command` module exposing
`add_parsers(subparsers)`; each subcommand sets `func=run` where `run(args) -> int`.
Those modules must import nothing heavy (TensorFlow, runtimes) at module level.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from tf2aif import __version__
from tf2aif.errors import EXIT_USAGE, Tf2aifError

__all__ = ["main"]

# Each module adds one or more subcommands; order is the order in --help.
COMMAND_MODULES = (
    "tf2aif.cli.pipeline",
    "tf2aif.cli.convert",
    "tf2aif.cli.serve",
    "tf2aif.cli.bench",
    "tf2aif.cli.deploy",
    "tf2aif.cli.place",
    "tf2aif.cli.bases",
    "tf2aif.cli.lock",
    "tf2aif.cli.ci",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tf2aif",
        description="Build a matrix of inference images from one TensorFlow model and one tf2aif.yaml.",
    )
    parser.add_argument("--version", action="version", version=f"tf2aif {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module
                raise
            continue
        module.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except Tf2aifError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130

"""The command line's two rich consoles: results on stdout, messages on stderr.

Every cli module prints through these, so `--json` output stays alone on stdout and every
table follows one width policy: a terminal's own width, else $COLUMNS, else 80 columns (CI
logs and pipes), the width every table is tested at. Machine-read output (JSON, YAML, file
lists) is written with plain print(): no markup, highlighting or wrapping may touch it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich loads only when something prints: `tf2aif --help` stays fast
    from rich.console import Console

__all__ = ["NON_TTY_WIDTH", "console", "messages", "results", "width_for"]

NON_TTY_WIDTH = 80


def width_for(stream, env=os.environ) -> int | None:
    """None (rich measures the terminal) on a tty; else $COLUMNS when it is a positive
    integer, else NON_TTY_WIDTH."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return None
    columns = env.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else NON_TTY_WIDTH


def console(*, stderr: bool = False, quiet: bool = False) -> Console:
    """A console writing to the current sys.stdout (results) or sys.stderr (messages); text
    lines are never broken (log lines stay greppable), tables fit the width."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(
        stderr=stderr, quiet=quiet, highlight=False, soft_wrap=True, width=width_for(stream)
    )


def results() -> Console:
    return console()


def messages(*, quiet: bool = False) -> Console:
    return console(stderr=True, quiet=quiet)

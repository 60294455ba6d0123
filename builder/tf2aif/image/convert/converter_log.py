"""Keep converter noise out of the console: file descriptors 1 and 2 go to a log file.

TensorFlow's C++ logging, the TFLite converter's MLIR dumps, tf2onnx's per-node tracebacks and
NNCF's progress bars write to the process's stdout/stderr from C++ and Python alike, so only a
redirect of the file descriptors (not of sys.stdout) catches all of them. The log is saved next to
the artifact as converter.log, where a failure message points.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LOG_FILE", "captured"]

LOG_FILE = "converter.log"


@contextlib.contextmanager
def captured(path: Path, *, header: str = "") -> Iterator[Path]:
    """Append everything written to fds 1 and 2 (and sys.stdout/stderr) in the block to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with path.open("ab") as log:
        if header:
            log.write(f"==== {header}\n".encode())
            log.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            # sys.stdout may not be fd 1 (a test runner's capture, a rich console's file)
            with (
                path.open("a", buffering=1) as text,
                contextlib.redirect_stdout(text),
                contextlib.redirect_stderr(text),
            ):
                yield path
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)

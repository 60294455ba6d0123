"""One-line answers for failed conversions: stage, op, converter, and the reason.

Converters bury their cause in long dumps (the TFLite converter prints MLIR locations, tf2onnx
a traceback per node, the runtimes a C++ status). The first line a user sees must say which
variant failed, in which stage (load, convert, quantize, check), in which converter, on which op,
and why; the dump itself goes to the converter log next to the artifact.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["describe", "failure_line"]

# most specific first: each pattern captures the op and, optionally, what happened to it
_OP_PATTERNS = (
    re.compile(r"'tf\.(?P<op>\w+)' op (?P<why>[^\n\"]+)"),
    re.compile(r"Node number \d+ \((?P<op>Flex\w+)\) (?P<why>failed to prepare)"),
    re.compile(r"Tensorflow op \[[^\]]*: (?P<op>\w+)\] (?P<why>is not supported)"),
    re.compile(r"(?P<why>No conversion rule found for operations: (?P<op>\w+)[^\n]*)"),
    re.compile(r"(?P<why>No Op registered for) (?P<op>\w+)"),
)
_NOISE = re.compile(r"^(?:<unknown>:0: |loc\(.*?\): |error: )+")
MAX_REASON = 240


def describe(text: str) -> tuple[str | None, str]:
    """(op, reason): the op a converter message names, if any, and its most telling line."""
    for pattern in _OP_PATTERNS:
        match = pattern.search(text)
        if match:
            return match.group("op"), " ".join(match.group("why").split())
    return None, _telling_line(text)


def failure_line(*, stage: str, converter: str, text: str, log: Path | None = None) -> str:
    """`stage failed in converter on op X: reason (converter log: path)`, one line.

    ConversionError puts the variant in front.
    """
    op, reason = describe(text)
    where = f" on op {op}" if op else ""
    tail = f" (converter log: {log})" if log is not None else ""
    return f"{stage} failed in {converter}{where}: {reason[:MAX_REASON]}{tail}"


def _telling_line(text: str) -> str:
    lines = [_NOISE.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("File ", "Traceback", "^"))]
    if not lines:
        return "no message"
    for line in lines:  # an explicit error line beats the last line of a dump
        if re.search(r"\b(error|unsupported|not supported|failed)\b", line, re.IGNORECASE):
            return line
    return lines[0]

"""Server options: declared once, read from the command line, else TF2AIF_* env vars, else defaults.

`python -m tf2aif.image.server` and `tf2aif serve` share `add_arguments` and `resolve_options`, so both
accept the same flags; images set the same options through the environment (TF2AIF_PORT=9000).
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tf2aif.errors import ServerError

__all__ = ["ServerOptions", "add_arguments", "resolve_options"]

ENV_PREFIX = "TF2AIF_"


def _bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < 0:
            raise ValueError(f"must be >= 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError(f"must be >= {minimum}, got {text}")
        return value

    parse.__name__ = "int"
    return parse


def _port(*, zero_means: str | None) -> Callable[[str], int]:
    """A TCP port 1..65535; 0 only where it has a meaning (`zero_means`, e.g. "off")."""

    def parse(text: str) -> int:
        value = int(text)
        if value == 0 and zero_means is None:
            raise ValueError(
                "must be 1..65535: clients, health checks and EXPOSE need a fixed port"
            )
        if not 0 <= value <= 65535:
            raise ValueError(
                f"must be 1..65535{' (0: ' + zero_means + ')' if zero_means else ''}, got {text}"
            )
        return value

    parse.__name__ = "port"
    return parse


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1)
    return f' (did you mean "{by_lower[close[0]]}"?)' if close else ""


def _one_of(choices: tuple[str, ...], *, upper: bool) -> Callable[[str], str]:
    """A case-insensitive choice, returned in its canonical case, with a did-you-mean."""

    def parse(text: str) -> str:
        value = text.strip().upper() if upper else text.strip().lower()
        if value not in choices:
            raise ValueError(
                f"{text!r} is not one of {', '.join(choices)}{_suggest(text.strip(), choices)}"
            )
        return value

    parse.__name__ = "choice"
    return parse


# What the backends take: onnxruntime's provider choices (backends/onnxruntime.py), OpenVINO's
# device names (CPU, GPU, GPU.1, NPU) and its virtual devices (AUTO:GPU,CPU, MULTI:..., HETERO:...).
DEVICE_WORDS = ("auto", "cpu", "gpu", "cuda", "tensorrt", "npu")
_DEVICE = re.compile(
    r"(?:(?:auto|cpu|gpu|cuda|tensorrt|npu)(?:\.\d+)?"
    r"|(?:auto|multi|hetero|batch):(?:cpu|gpu|npu)(?:\.\d+)?(?:,(?:cpu|gpu|npu)(?:\.\d+)?)*)",
    re.IGNORECASE,
)
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _device(text: str) -> str:
    value = text.strip()
    if not _DEVICE.fullmatch(value):
        word = value.split(":", 1)[0].split(".", 1)[0]
        raise ValueError(
            f"{text!r} is not a device: {' | '.join(DEVICE_WORDS)} (OpenVINO also GPU.1, "
            f"AUTO:GPU,CPU, MULTI:..., HETERO:...){_suggest(word, DEVICE_WORDS)}"
        )
    return value


@dataclass(frozen=True, kw_only=True)
class ServerOptions:
    """Everything the server needs; field help lives in OPTION_HELP below."""

    artifact_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int = 8081
    max_batch_size: int = 32
    adaptive_batching: bool = True
    max_queue_delay_ms: float = 0.0
    max_queue_size: int = 256
    max_body_bytes: int = 64 * 1024 * 1024
    threads: int = 0
    workers: int = 1
    device: str = "auto"
    performance_hint: str = "LATENCY"
    allow_nonfinite: bool = False
    max_image_pixels: int = 4096 * 4096
    warmup: bool = True
    engine_cache: Path | None = None
    graceful_timeout_s: float = 30.0
    access_log: bool = False
    log_level: str = "info"


# field name -> (parser, help). The flag is --field-name, the env var TF2AIF_FIELD_NAME.
OPTION_HELP: dict[str, tuple[Callable[[str], Any], str]] = {
    "host": (str, "interface to listen on (images use 0.0.0.0)"),
    "port": (_port(zero_means=None), "TCP port, 1..65535 (default 8080)"),
    "grpc_port": (
        _port(zero_means="no gRPC endpoint"),
        "TCP port of the gRPC endpoint, 1..65535 (default 8081; 0 turns it off)",
    ),
    "max_batch_size": (
        _positive(int),
        "largest batch (rows along dim 0) the dynamic batcher forms; 1 turns batching off",
    ),
    "adaptive_batching": (
        _bool,
        "at start-up, time the runtime at batch 1, 2, 4, ... max and cap batches where the cost "
        "per row stops falling (default true; needs warm-up)",
    ),
    "max_queue_delay_ms": (
        _positive(float),
        "how long the oldest queued request may wait for others to join its batch (default 0: "
        "batch only what is already queued)",
    ),
    "max_queue_size": (_positive(int), "requests waiting beyond this get 503 + Retry-After"),
    "max_body_bytes": (_positive(int), "larger request bodies get 413"),
    "threads": (_positive(int), "intra-op threads of the runtime (0: the runtime's default)"),
    "workers": (_at_least(1), "inference worker threads (>= 1), each running whole batches"),
    "device": (
        _device,
        "auto | cpu | gpu | cuda | tensorrt | npu, OpenVINO also GPU.1, AUTO:GPU,CPU, "
        "MULTI:..., HETERO:... (onnxruntime: auto tries TensorRT, CUDA, CPU)",
    ),
    "performance_hint": (
        _one_of(PERFORMANCE_HINTS, upper=True),
        "OpenVINO PERFORMANCE_HINT: LATENCY, THROUGHPUT or CUMULATIVE_THROUGHPUT",
    ),
    "allow_nonfinite": (_bool, "accept NaN/Inf in float inputs instead of answering 400"),
    "max_image_pixels": (
        _positive(int),
        "largest image (width x height) a processing module may decode with Pillow; larger "
        "ones get 413 before any pixel is decoded (default 16777216 = 4096x4096; 0: no limit)",
    ),
    "warmup": (_bool, "run the model on zeros before reporting ready (default true)"),
    "engine_cache": (Path, "TensorRT engine cache folder (mount a volume here)"),
    "graceful_timeout_s": (_positive(float), "on SIGTERM, wait this long for in-flight requests"),
    "access_log": (_bool, "log every request (off by default: it costs latency)"),
    "log_level": (_one_of(LOG_LEVELS, upper=False), "critical | error | warning | info | debug"),
}

_BOOL_FLAGS = {name for name, (parser, _) in OPTION_HELP.items() if parser is _bool}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ARTIFACT_DIR and every option; unset flags stay None so the env can fill them."""
    parser.add_argument(
        "artifact_dir",
        metavar="ARTIFACT_DIR",
        nargs="?",
        help="converted artifact folder holding tf2aif-artifact.json (env TF2AIF_ARTIFACT_DIR)",
    )
    for name, (parse, text) in OPTION_HELP.items():
        flag = "--" + name.replace("_", "-")
        env = ENV_PREFIX + name.upper()
        if name in _BOOL_FLAGS:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=f"{text} [{env}]")
        else:
            parser.add_argument(
                flag, type=_usage(parse), metavar=name.upper(), help=f"{text} [{env}]"
            )


def _usage(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """argparse shows the reason of an ArgumentTypeError only: a bad value becomes a usage
    error that says why (exit 2), the same reason TF2AIF_* env vars get."""

    def parse_argument(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse_argument.__name__ = getattr(parse, "__name__", "value")
    return parse_argument


def resolve_options(args: argparse.Namespace, env: Mapping[str, str]) -> ServerOptions:
    """Command line beats environment beats defaults."""
    values: dict[str, Any] = {}
    for spec in fields(ServerOptions):
        given = getattr(args, spec.name, None)
        env_name = ENV_PREFIX + spec.name.upper()
        if given is not None:
            values[spec.name] = given
        elif env.get(env_name, "") != "":
            values[spec.name] = _from_env(spec.name, env_name, env[env_name])
    if "artifact_dir" not in values:
        raise ServerError("no artifact: pass ARTIFACT_DIR or set TF2AIF_ARTIFACT_DIR")
    values["artifact_dir"] = Path(values["artifact_dir"])
    options = ServerOptions(**values)
    if options.grpc_port == options.port:
        raise ServerError(
            f"--grpc-port {options.grpc_port} is also the HTTP --port: give it another port, "
            "or 0 for no gRPC endpoint"
        )
    return options


def _from_env(name: str, env_name: str, text: str) -> Any:
    parse = OPTION_HELP[name][0] if name in OPTION_HELP else str
    try:
        return parse(text)
    except ValueError as exc:
        raise ServerError(f"{env_name}={text!r}: {exc}") from None

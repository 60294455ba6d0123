"""Options: one declaration, command line over TF2AIF_* env over defaults; `tf2aif serve` wiring."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tf2aif.cli.main import build_parser
from tf2aif.errors import Tf2aifError
from tf2aif.image.server.options import ServerOptions, add_arguments, resolve_options

REPO = Path(__file__).resolve().parents[2]


def _resolve(argv: list[str], env: dict[str, str] | None = None) -> ServerOptions:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return resolve_options(parser.parse_args(argv), env or {})


def test_defaults():
    options = _resolve(["art"])
    assert options == ServerOptions(artifact_dir=Path("art"))
    assert (options.port, options.max_batch_size, options.max_queue_delay_ms) == (8080, 32, 0.0)


def test_command_line_beats_env_beats_default():
    env = {"TF2AIF_PORT": "9000", "TF2AIF_MAX_BATCH_SIZE": "4", "TF2AIF_ALLOW_NONFINITE": "yes"}
    options = _resolve(["art", "--port", "9100"], env)
    assert options.port == 9100  # flag
    assert options.max_batch_size == 4  # env
    assert options.allow_nonfinite is True  # env bool
    assert _resolve(["art", "--no-allow-nonfinite"], env).allow_nonfinite is False
    assert _resolve([], {"TF2AIF_ARTIFACT_DIR": "/opt/tf2aif/model"}).artifact_dir == Path(
        "/opt/tf2aif/model"
    )


def test_bad_values_are_explained():
    with pytest.raises(Tf2aifError, match=r"TF2AIF_PORT='http': invalid literal"):
        _resolve(["art"], {"TF2AIF_PORT": "http"})
    with pytest.raises(Tf2aifError, match=r"TF2AIF_WARMUP='maybe': expected true/false"):
        _resolve(["art"], {"TF2AIF_WARMUP": "maybe"})
    with pytest.raises(
        Tf2aifError, match="no artifact: pass ARTIFACT_DIR or set TF2AIF_ARTIFACT_DIR"
    ):
        _resolve([])
    with pytest.raises(SystemExit):
        _resolve(["art", "--max-batch-size", "-1"])


def test_tf2aif_serve_takes_the_same_options():
    args = build_parser().parse_args(
        ["serve", "art", "--max-queue-delay-ms", "2.5", "--workers", "2"]
    )
    options = resolve_options(args, {})
    assert (options.max_queue_delay_ms, options.workers) == (2.5, 2)
    assert args.func.__module__ == "tf2aif.cli.serve"


def test_cli_import_stays_light():
    """The CLI imports every command module at start: serving must not pull numpy or runtimes."""
    code = "import sys, tf2aif.cli.serve; print(sorted({'numpy', 'starlette', 'uvicorn', 'tensorflow'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(REPO / "builder")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_module_entry_point_reports_a_missing_artifact(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tf2aif.image.server", str(tmp_path / "nothing")],
        env={"PYTHONPATH": str(REPO / "builder")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: {tmp_path / 'nothing'}: no tf2aif-artifact.json; is this a tf2aif artifact directory?"
    )

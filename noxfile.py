"""Sessions: lint, unit, conversion, flex, docker, tests (all), fuzz, bench, zoo.

They run in the interpreter nox itself runs in (`.venv/bin/nox`, made by scripts/setup.sh):
TensorFlow and the runtimes are too large to reinstall per session. `unit` runs every pure test
(the folders in PURE, minus the docker, conversion and slow marks) with TensorFlow blocked, so a
pure test that starts to need it fails there instead of slowing it down.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests", "flex"]

PY = sys.executable  # the venv's python, whatever PATH says
# Folders holding pure tests: no Docker, no conversion, no TensorFlow (tests/conversion,
# tests/server and tests/integration hold none).
PURE = [
    "tests/unit",
    "tests/golden",
    "tests/buildx",
    "tests/docs",
    "tests/cli",
    "tests/place",
    "tests/deploy",
    "tests/lock",
    "tests/bench",
]
NOT_PURE = "not docker and not conversion and not slow"


LINTED = ["builder", "tests", "app", "examples", "benchmarks", "noxfile.py"]


@nox.session
def lint(session: nox.Session) -> None:
    session.run(PY, "-m", "ruff", "check", *LINTED)
    session.run(PY, "-m", "ruff", "format", "--check", *LINTED)


@nox.session
def unit(session: nox.Session) -> None:
    """Every pure test (stages, golden bake files, buildx --print, docs, CLI, and the pure tests
    of place, deploy, lock and bench): seconds, and TensorFlow cannot be imported."""
    guard = ["-p", "no_tensorflow"]
    session.run(PY, "-m", "pytest", "-q", *guard, "-m", NOT_PURE, *PURE, *session.posargs)


@nox.session
def conversion(session: nox.Session) -> None:
    session.run(PY, "-m", "pytest", "-q", "-m", "conversion", *session.posargs)


@nox.session(venv_backend="venv")
def flex(session: nox.Session) -> None:
    """Select TF ops (Flex) conversions, checks and serving, on the TensorFlow that still links
    the Flex delegate (2.18.1), in a venv of its own with the convert-tflite-flex image's pins
    (about 2.8 GiB): the shared venv's newer TensorFlow cannot run these models."""
    session.install(
        "-r", "base_images/convert-tflite-flex/requirements.txt", "pytest", "hypothesis"
    )
    session.run(
        "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "tests/conversion/test_tflite_recurrent.py", *session.posargs,
    )  # fmt: skip


@nox.session
def docker(session: nox.Session) -> None:
    """Real images: bases, bake, run, push, pull (needs scripts/docker-up.sh)."""
    session.run(PY, "-m", "pytest", "-q", "--run-docker", "-m", "docker", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Everything, Docker included when an engine answers."""
    session.run(PY, "-m", "pytest", "-q", "--run-docker", "--durations=15", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Every generated-input test with >= 10,000 cases each, and Hypothesis's statistics."""
    fuzz_args = ["-m", "fuzz", "--hypothesis-profile=fuzz", "--hypothesis-show-statistics"]
    session.run(PY, "-m", "pytest", "-q", *fuzz_args, *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    session.run(PY, "benchmarks/plan_speed.py", *session.posargs)


# the zoo's recurrent models, whose tflite cells need options.tflite.select_tf_ops (Flex)
ZOO_FLEX_MODELS = "lstm_text,bilstm_text,gru_audio"


@nox.session(venv_backend="venv")
def zoo(session: nox.Session) -> None:
    """The model conformance table docs/models.md: the whole cpu matrix on examples/zoo, each cell
    converted, gated and served (about 2 hours on 2 cores; `-- --models a,b` for some models),
    then the recurrent models' tflite cells with select_tf_ops, run on TensorFlow 2.18.1 (Flex)
    in this session's venv, with the serve-tflite-flex image's pins."""
    session.run(PY, "benchmarks/zoo.py", *session.posargs)
    if session.posargs:
        return
    session.install(
        "-r", "base_images/convert-tflite-flex/requirements.txt",
        "-r", "base_images/serve-tflite-flex/requirements.txt",
        "httpx", "scikit-learn",
    )  # fmt: skip
    session.run(
        PY, "benchmarks/zoo.py", "--models", ZOO_FLEX_MODELS,
        "--variants", "tflite-fp32,tflite-fp16,tflite-int8",
        "--option", "tflite.select_tf_ops=true",
        "--python", str(Path(session.bin) / "python"),
    )  # fmt: skip

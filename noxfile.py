"""Sessions: lint, unit, conversion, docker, tests (all), fuzz, bench.

They run in the interpreter nox itself runs in (`.venv/bin/nox`, made by scripts/setup.sh):
TensorFlow and the runtimes are too large to reinstall per session.
"""

from __future__ import annotations

import sys

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]

PY = sys.executable  # the venv's python, whatever PATH says
FAST = ["tests/unit", "tests/golden", "tests/buildx"]


LINTED = ["builder", "tests", "app", "examples", "benchmarks", "noxfile.py"]


@nox.session
def lint(session: nox.Session) -> None:
    session.run(PY, "-m", "ruff", "check", *LINTED)
    session.run(PY, "-m", "ruff", "format", "--check", *LINTED)


@nox.session
def unit(session: nox.Session) -> None:
    """Pure stages, golden bake files, buildx --print: seconds, no TensorFlow."""
    session.run(PY, "-m", "pytest", "-q", *FAST, *session.posargs)


@nox.session
def conversion(session: nox.Session) -> None:
    session.run(PY, "-m", "pytest", "-q", "-m", "conversion", *session.posargs)


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

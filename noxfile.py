"""Sessions: lint, unit, conversion, server, docker, tests (all), bench.

They run in the current environment (`.venv` made by scripts/setup.sh): TensorFlow and the
runtimes are too large to reinstall per session.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "tests"]

FAST = ["tests/unit", "tests/golden", "tests/buildx"]


@nox.session
def lint(session: nox.Session) -> None:
    session.run("ruff", "check", "builder", "tests", "app", "examples", "benchmarks", "noxfile.py")
    session.run(
        "ruff",
        "format",
        "--check",
        "builder",
        "tests",
        "app",
        "examples",
        "benchmarks",
        "noxfile.py",
    )


@nox.session
def unit(session: nox.Session) -> None:
    """Pure stages, golden bake files, buildx --print: seconds, no TensorFlow."""
    session.run("pytest", "-q", *FAST, *session.posargs)


@nox.session
def conversion(session: nox.Session) -> None:
    session.run("pytest", "-q", "-m", "conversion", *session.posargs)


@nox.session
def docker(session: nox.Session) -> None:
    """Real images: bases, bake, run, push, pull (needs scripts/docker-up.sh)."""
    session.run("pytest", "-q", "--run-docker", "-m", "docker", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Everything, Docker included when an engine answers."""
    session.run("pytest", "-q", "--run-docker", "--durations=15", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    session.run("python", "benchmarks/plan_speed.py", *session.posargs)

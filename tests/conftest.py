"""Shared pytest options: --run-docker turns on tests that need a Docker engine with buildx."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, settings

# Generated-input tests: a modest count in the suite, >= 10,000 cases per target in `nox -s fuzz`
# (`--hypothesis-profile=fuzz`). Deadlines are off: this machine is shared and noisy.
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-docker", action="store_true", help="run tests marked docker (needs dockerd + buildx)"
    )


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    docker_items = [item for item in items if "docker" in item.keywords]
    if not docker_items:
        return
    if not config.getoption("--run-docker"):
        reason = "needs --run-docker (and a Docker engine: scripts/docker-up.sh)"
    elif not _docker_answers():
        reason = "--run-docker given but `docker info` does not answer: start dockerd (scripts/docker-up.sh)"
    else:
        return
    for item in docker_items:
        item.add_marker(pytest.mark.skip(reason=reason))

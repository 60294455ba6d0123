"""A real OIP server (tests/bench/oip_app.py under uvicorn) in a subprocess, per behaviour."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tf2aif.bench.targets import free_port, wait_ready

HERE = Path(__file__).resolve().parent


@contextlib.contextmanager
def toy_server(*, service_ms: float = 0.0, fail_every: int = 0) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, TOY_SERVICE_MS=str(service_ms), TOY_FAIL_EVERY=str(fail_every))
    argv = [sys.executable, "-m", "uvicorn", "oip_app:app", "--app-dir", str(HERE),
            "--port", str(port), "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(argv, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout_s=30, alive=lambda: None if process.poll() is None else "exited")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def start_toy() -> Iterator[Callable[..., str]]:
    """start_toy(service_ms=..., fail_every=...) -> base URL; every server stops after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda **kwargs: stack.enter_context(toy_server(**kwargs))


SERVER_FIXTURES = {"start_toy", "results"}  # fixtures that start toy servers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start a toy server take seconds each: `slow`, so `nox -s unit` leaves them to
    `nox -s tests` and keeps the bench's pure tests."""
    for item in items:
        if HERE in item.path.parents and SERVER_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)

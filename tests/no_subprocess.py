"""The autouse guard of the pure-stage folders (tests/unit, tests/golden): starting a process
fails the test. Their conftest.py imports `no_subprocess`, which turns it on for the folder."""

from __future__ import annotations

import subprocess

import pytest


class NoSubprocess:
    """Stands in for subprocess.Popen: any attempt to start a process is a failing test."""

    def __init__(self, *args, **kwargs):
        raise AssertionError(f"unit tests must not start processes: {args[:1]}")


@pytest.fixture(autouse=True)
def no_subprocess(monkeypatch):
    """Unit tests exercise pure stages; reaching docker from here would be a bug."""
    monkeypatch.setattr(subprocess, "Popen", NoSubprocess)

import subprocess

import pytest


class _NoSubprocess:
    def __init__(self, *args, **kwargs):
        raise AssertionError(f"unit tests must not start processes: {args[:1]}")


@pytest.fixture(autouse=True)
def no_subprocess(monkeypatch):
    """Unit tests exercise pure stages; reaching docker from here would be a bug."""
    monkeypatch.setattr(subprocess, "Popen", _NoSubprocess)

"""The folder's guard is on: starting any process from a unit test fails it."""

from __future__ import annotations

import subprocess

import pytest

from no_subprocess import NoSubprocess


def test_starting_a_process_fails_the_test():
    assert subprocess.Popen is NoSubprocess
    with pytest.raises(AssertionError, match="must not start processes: .*'docker'"):
        subprocess.run(["docker", "info"])

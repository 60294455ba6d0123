"""pytest plug-in (`-p no_tensorflow`, used by `nox -s unit`): importing TensorFlow fails.

Pure tests must not need it; with this plug-in one that does fails at the import that pulls it
in, naming the test, instead of quietly adding seconds to the fast suite.
"""

from __future__ import annotations

import importlib.abc
import sys

BLOCKED = ("tensorflow", "keras", "tf_keras")


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".", 1)[0] in BLOCKED:
            raise ImportError(f"{fullname} is blocked in the pure test session (nox -s unit)")
        return None


def pytest_configure(config) -> None:
    loaded = sorted(name for name in sys.modules if name.split(".", 1)[0] in BLOCKED)
    if loaded:
        raise RuntimeError(f"TensorFlow was imported before the pure tests started: {loaded}")
    sys.meta_path.insert(0, Blocker())

"""Load the user's plug-in modules (processing, calibration) from .py files, with clear errors."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from tf2aif.errors import PluginError

__all__ = ["load_function", "load_module"]


def load_module(path: str | Path) -> ModuleType:
    """Import a .py file as a module; its folder is importable so it can import its siblings."""
    path = Path(path).resolve()
    if not path.is_file():
        raise PluginError(f"{path}: plug-in module not found")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"tf2aif_plugin_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1]
        raise PluginError(
            f"{path}: import failed: {type(exc).__name__}: {exc} (at {last.filename}:{last.lineno})"
        ) from exc
    finally:
        sys.path.remove(str(path.parent))
    sys.modules[name] = module
    return module


def load_function(path: str | Path, function: str) -> Callable[..., Any]:
    module = load_module(path)
    func = getattr(module, function, None)
    if not callable(func):
        available = sorted(
            n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
        )
        raise PluginError(
            f"{path}: has no function {function!r}; callables defined there: {', '.join(available) or 'none'}"
        )
    return func

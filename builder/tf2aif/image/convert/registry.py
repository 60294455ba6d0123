"""Converter backends by name: one function per backend, each registered once.

A backend is `convert(job: ConvertJob) -> ConvertResult`; it writes its files into
`job.model_dir`. The built-in backends (`tf2aif.image.convert.backends.BUILTIN`) are registered on
first use; `register` adds more, and a name registered twice is an error.
"""

from __future__ import annotations

from collections.abc import Callable

from tf2aif.errors import ConversionError, did_you_mean
from tf2aif.image.convert.job import ConvertJob, ConvertResult

__all__ = ["Backend", "fallbacks", "get", "lookup", "register", "reset"]

Backend = Callable[[ConvertJob], ConvertResult]

_REGISTRY: dict[str, Backend] = {}
_builtin_loaded = False


def register(name: str) -> Callable[[Backend], Backend]:
    """Decorator: register `func` as the backend called `name`; a second `name` is an error."""
    _load_builtin()

    def decorate(func: Backend) -> Backend:
        _add(name, func)
        return func

    return decorate


def _add(name: str, func: Backend) -> None:
    if name in _REGISTRY:
        existing = _REGISTRY[name]
        raise ValueError(
            f"converter backend {name!r} is registered twice: "
            f"{existing.__module__}.{existing.__qualname__} and "
            f"{func.__module__}.{func.__qualname__}"
        )
    _REGISTRY[name] = func


def get() -> dict[str, Backend]:
    """A copy of the registry, so callers cannot modify it by accident."""
    _load_builtin()
    return dict(_REGISTRY)


def lookup(name: str) -> Backend:
    backends = get()
    if name not in backends:
        raise ConversionError(
            f"unknown converter backend {name!r}{did_you_mean(name, backends)}; "
            f"known backends: {', '.join(sorted(backends))}"
        )
    return backends[name]


def fallbacks(name: str, precision: str) -> tuple[str, ...]:
    """The fallback candidates the built-in backend `name` offers for `precision` (see fallback)."""
    from tf2aif.image.convert.backends import FALLBACKS

    return FALLBACKS.get(name, {}).get(precision, ())


def reset() -> None:
    """Forget every backend; the built-in ones come back on next use."""
    global _builtin_loaded
    _REGISTRY.clear()
    _builtin_loaded = False


def _load_builtin() -> None:
    global _builtin_loaded
    if _builtin_loaded:
        return
    _builtin_loaded = True
    from tf2aif.image.convert.backends import BUILTIN

    for name, func in BUILTIN.items():
        _add(name, func)

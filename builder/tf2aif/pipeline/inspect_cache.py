"""The inspection caches' files: where the per-user cache lives, and reading and writing one entry.

An entry is the JSON of one ModelFacts, named by the model's content digest. Reading is strict: an
entry that is not exactly facts for the digest asked (another digest, another format, a damaged
or half-written file) is ignored with a log line, never taken for facts. Writing is atomic (a
temporary file renamed over the entry), so concurrent plans never read half an entry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from tf2aif.pipeline.model_inspect import ModelFacts, TensorFacts

__all__ = ["read_cached_facts", "user_cache_dir", "write_cached_facts"]

log = logging.getLogger(__name__)


def user_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user inspection cache: `$XDG_CACHE_HOME/tf2aif/inspect`, else `~/.cache/...`
    (a relative XDG_CACHE_HOME is ignored, as the XDG spec says)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path(env.get("HOME") or Path.home()) / ".cache"
    return root / "tf2aif" / "inspect"


def read_cached_facts(path: Path, *, digest: str) -> ModelFacts | None:
    """The facts cached at `path` for this digest, or None: a missing entry, or one that is not
    exactly what `write_cached_facts` writes for this digest (logged and ignored; never trusted)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.info("ignoring unreadable inspection cache %s: %s", path, exc)
        return None
    try:
        return _strict_facts(json.loads(text), digest=digest)
    except (ValueError, RecursionError) as exc:
        log.info("ignoring unreadable inspection cache %s: %s", path, exc)
        return None


def write_cached_facts(path: Path, facts: ModelFacts) -> None:
    """Write atomically (a reader sees the old entry or the new one, never half of it); a cache
    that cannot be written (read-only home, full disk) costs a later inspection, not the run."""
    partial = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8"
        ) as handle:
            partial = handle.name
            handle.write(facts.to_json() + "\n")
        os.replace(partial, path)
    except OSError as exc:
        log.info("inspection cache %s not written: %s", path, exc)
        if partial is not None:
            with contextlib.suppress(OSError):
                os.unlink(partial)


def _strict_facts(data: Any, *, digest: str) -> ModelFacts:
    """ModelFacts from parsed JSON with every field and type checked (ValueError otherwise), so
    an entry of another digest, another format or a damaged file is never taken for facts."""
    facts_keys = {f.name for f in fields(ModelFacts)}
    tensor_keys = {f.name for f in fields(TensorFacts)}

    def tensors(items: Any) -> tuple[TensorFacts, ...]:
        if not isinstance(items, list):
            raise ValueError("tensors are not a list")
        found = []
        for item in items:
            if not (isinstance(item, dict) and set(item) == tensor_keys):
                raise ValueError(f"a tensor is not {sorted(tensor_keys)}")
            name, dtype, shape = item["name"], item["dtype"], item["shape"]
            if not (isinstance(name, str) and isinstance(dtype, str) and isinstance(shape, list)):
                raise ValueError("a tensor's name, dtype or shape has the wrong type")
            if not all(type(d) is int and d >= -1 for d in shape):
                raise ValueError("a shape holds something other than sizes and -1")
            found.append(TensorFacts(name=name, dtype=dtype, shape=tuple(shape)))
        return tuple(found)

    if not (isinstance(data, dict) and set(data) == facts_keys):
        raise ValueError(f"not an inspection entry (keys {sorted(facts_keys)})")
    if data["digest"] != digest:
        raise ValueError(f"entry of another model ({data['digest']!r})")
    ops, xla_functions = data["ops"], data["xla_functions"]
    for names in (ops, xla_functions):
        if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
            raise ValueError("ops or xla_functions are not a list of names")
    return ModelFacts(
        digest=digest,
        inputs=tensors(data["inputs"]),
        outputs=tensors(data["outputs"]),
        ops=frozenset(ops),
        xla_functions=frozenset(xla_functions),
    )

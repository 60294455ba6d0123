"""Kubernetes names of the server instances of a placement: unique by construction.

An instance is named `<model>-<variant>-<node>` (DNS-1123 label, at most 63 characters) when that
name is unambiguous. Where two instances would share it -- a second server of the same model and
variant on one node, node names differing only in characters a label cannot hold (`a.b`, `a-b`),
or names cut at 63 characters -- the later ones get a suffix: `-<n>` for the n-th server on the
node when that is free, else a digest of what identifies the instance. Every file and object
written for the placement is keyed by these names, so none can overwrite another.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["LABEL_LIMIT", "InstanceKey", "dns_label", "instance_names"]

LABEL_LIMIT = 63
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


@dataclass(frozen=True, kw_only=True)
class InstanceKey:
    """What identifies one server instance: model, variant, node and its ordinal among the
    servers of that model and variant on that node (0 for the first)."""

    model: str
    variant: str
    node: str
    ordinal: int = 0


def dns_label(text: str) -> str:
    """`text` as a DNS-1123 label: lowercase, other characters as '-', no leading/trailing '-'."""
    clean = re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")
    return clean or "x"


def _digest(key: InstanceKey, attempt: int) -> str:
    raw = f"{key.model}\0{key.variant}\0{key.node}\0{key.ordinal}\0{attempt}"
    return hashlib.sha256(raw.encode()).hexdigest()[:8]


def _with_suffix(base: str, suffix: str) -> str:
    return f"{base[: LABEL_LIMIT - len(suffix) - 1].rstrip('-')}-{suffix}"


def instance_names(keys: Sequence[InstanceKey]) -> list[str]:
    """One distinct DNS-1123 label per key, in the keys' order (keys must be distinct)."""
    if len(set(keys)) != len(keys):
        raise ValueError("instance keys must be distinct")
    bases = [dns_label(f"{k.model}-{k.variant.replace('/', '-')}-{k.node}") for k in keys]
    owners: dict[str, set[tuple[str, str, str]]] = {}  # base -> (model, variant, node) giving it
    for key, base in zip(keys, bases, strict=True):
        owners.setdefault(base, set()).add((key.model, key.variant, key.node))
    counts = {base: len(found) for base, found in owners.items()}
    names: list[str | None] = [None] * len(keys)
    taken: set[str] = set()
    # first the names that are exact and unambiguous, so no suffixed name can take them
    for i, (key, base) in enumerate(zip(keys, bases, strict=True)):
        if key.ordinal == 0 and counts[base] == 1 and len(base) <= LABEL_LIMIT:
            names[i] = base
            taken.add(base)
    for i, (key, base) in enumerate(zip(keys, bases, strict=True)):
        if names[i] is not None:
            continue
        candidates: Iterable[str] = ()
        if key.ordinal and counts[base] == 1 and len(base) <= LABEL_LIMIT:
            candidates = (_with_suffix(base, str(key.ordinal + 1)),)
        name = next((c for c in candidates if c not in taken), None)
        attempt = 0
        while name is None or name in taken:
            name = _with_suffix(base, _digest(key, attempt))
            attempt += 1
        names[i] = name
        taken.add(name)
    assert all(_LABEL.fullmatch(n) and len(n) <= LABEL_LIMIT for n in names)  # type: ignore[arg-type]
    return names  # type: ignore[return-value]

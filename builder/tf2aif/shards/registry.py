"""What a shard reads back from the registry: pushed manifests per platform, conversion
artifacts pinned by digest with the fidelity report they carry."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from tf2aif.pipeline.imagetools import inspect_config_argv, inspect_raw_argv
from tf2aif.shards.bake import FIDELITY_LABEL

__all__ = ["artifact_fidelity", "pinned_artifact", "platform_manifest"]


def _inspect_raw(reference: str) -> dict[str, Any] | None:
    proc = subprocess.run(inspect_raw_argv(reference), capture_output=True, timeout=120)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def platform_manifest(repository: str, digest: str, platform: str) -> str | None:
    """The image manifest of `platform` in what was pushed (an index with attestations, or a
    plain manifest)."""
    data = _inspect_raw(f"{repository}@{digest}")
    if data is None:
        return None
    if "manifests" not in data:
        return digest
    os_name, arch, *variant = platform.split("/")
    for item in data["manifests"]:
        spec = item.get("platform") or {}
        annotations = item.get("annotations") or {}
        if "vnd.docker.reference.type" in annotations:
            continue  # an attestation manifest
        if (spec.get("os"), spec.get("architecture")) == (os_name, arch) and (
            not variant or spec.get("variant") == variant[0]
        ):
            return item["digest"]
    return None


def artifact_fidelity(reference: str) -> dict[str, Any]:
    """The fidelity report a conversion artifact carries as a label (any platform: all equal)."""
    proc = subprocess.run(
        inspect_config_argv(reference),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        return {}
    data = json.loads(proc.stdout or "{}")
    configs = data.values() if "config" not in data else [data]
    for config in configs:
        labels = (config.get("config") or {}).get("Labels") or {}
        if FIDELITY_LABEL in labels:
            return json.loads(labels[FIDELITY_LABEL])
    return {}


def pinned_artifact(
    ref: str, lookup: Callable[[str], str | None]
) -> tuple[str | None, dict[str, Any]]:
    """(`repo@sha256:…` of a conversion's artifact or None, the fidelity report it carries)."""
    digest = lookup(ref)
    if digest is None:
        return None, {}
    pinned = f"{ref.rsplit(':', 1)[0]}@{digest}"
    return pinned, artifact_fidelity(pinned)

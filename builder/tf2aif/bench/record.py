"""Which variant of a build record an image serves on this host (the record itself is read by
tf2aif.pipeline.record)."""

from __future__ import annotations

from collections.abc import Mapping

from tf2aif.pipeline.recipes import platform_arches

__all__ = ["pick_variant"]


def pick_variant(
    variants: tuple[str, ...], platform: str, *, env: Mapping[str, str] | None = None
) -> str | None:
    """The variant an image serves on this host: same platform first, else same CPU arch (as the
    recipes' platforms say, including those of TF2AIF_RECIPE_PATH folders in `env`)."""
    for variant in variants:
        if variant.split("/")[0] == platform:
            return variant
    arches = platform_arches(env)
    arch = arches.get(platform)
    if arch is None:
        return None
    for variant in variants:
        if arches.get(variant.split("/")[0]) == arch:
            return variant
    return None

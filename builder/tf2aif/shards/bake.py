"""Bake files for one shard (pure): the plan's bake file, cut down and re-pointed.

- convert shard, phase `local`: its conversions (and their toolchain bases) as in `tf2aif bake`,
  writing each artifact to .tf2aif/artifacts/<target> (the fidelity gate runs here);
- convert shard, phase `push`: the same targets (every step a cache hit) exported as an image
  for every platform their server images need, tagged with the content address and labelled
  with the address and the measured fidelity;
- build shard: its server targets and their runtime bases for one platform, `artifact` taken
  from the registry by digest (`docker-image://…@sha256:…`), pushed by digest or under a
  staging tag (never a final tag).

Registry cache refs carry the platform, so runners of different arches never overwrite each
other's cache of the same target.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from tf2aif.pipeline.bake import EmitOptions, bake_dict
from tf2aif.pipeline.plan import Plan
from tf2aif.shards.matrix import BuildShard, ConvertShard, arch_of

__all__ = ["FIDELITY_LABEL", "build_shard_bake", "convert_shard_bake", "fidelity_label"]

FIDELITY_LABEL = "io.tf2aif.fidelity"


def fidelity_label(report: Mapping[str, Any]) -> str:
    return json.dumps(report, sort_keys=True, separators=(",", ":"))


def _cache_repository(plan: Plan) -> str:
    return f"{plan.registry}/{plan.name}-cache" if plan.registry else f"{plan.name}-cache"


def _cache(plan: Plan, name: str, platform: str | None) -> dict[str, list[str]]:
    ref = f"{_cache_repository(plan)}:{name}" + (f"-{arch_of(platform)}" if platform else "")
    return {
        "cache-from": [f"type=registry,ref={ref}"],
        "cache-to": [f"type=registry,ref={ref},mode=max"],
    }


def _linked(full: Mapping[str, Any], names: list[str]) -> dict[str, dict[str, Any]]:
    """`names` and every target they link through `target:` contexts, deep-copied."""
    out: dict[str, dict[str, Any]] = {}
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name in out:
            continue
        out[name] = copy.deepcopy(full["target"][name])
        for value in out[name].get("contexts", {}).values():
            if value.startswith("target:"):
                todo.append(value.removeprefix("target:"))
    return out


def convert_shard_bake(
    plan: Plan,
    shard: ConvertShard,
    *,
    cache: bool = False,
    push: Mapping[str, str] | None = None,
    platforms: Mapping[str, tuple[str, ...]] | None = None,
    labels: Mapping[str, Mapping[str, str]] | None = None,
    output_suffix: str = "",
) -> dict[str, Any]:
    """Phase `local` when `push` is None; else `push` maps conversion -> artifact tag."""
    full = bake_dict(plan, EmitOptions())
    targets = _linked(full, list(shard.converts))
    for name, target in targets.items():
        if cache:
            target.update(_cache(plan, name, None))
        if push is None or name not in shard.converts:
            continue
        target["tags"] = [push[name]]
        target["output"] = ["type=image,push=true" + output_suffix]
        target["platforms"] = list((platforms or {}).get(name, ()))
        target["labels"] = dict(sorted((labels or {}).get(name, {}).items()))
        if not target["platforms"]:
            del target["platforms"]
    return {"group": {"default": {"targets": list(shard.converts)}}, "target": targets}


def build_shard_bake(
    plan: Plan,
    shard: BuildShard,
    *,
    artifacts: Mapping[str, str],
    staging: Mapping[str, str] | None = None,
    fidelity: Mapping[str, str] | None = None,
    cache: bool = False,
    by_digest: bool = False,
    output_suffix: str = "",
) -> dict[str, Any]:
    """`artifacts` maps conversion -> `repo@sha256:…`; `staging` maps server target -> the
    staging tag to push under; with `by_digest` the image is pushed by digest with no tag at all
    (builders other than the docker driver); `fidelity` maps conversion -> its label value."""
    full = bake_dict(plan, EmitOptions())
    serves = {s.name: s for s in plan.serves}
    targets: dict[str, dict[str, Any]] = {}
    for name in shard.serves:
        serve = serves[name]
        target = copy.deepcopy(full["target"][name])
        target["platforms"] = [shard.platform]
        target["contexts"]["artifact"] = f"docker-image://{artifacts[serve.convert]}"
        if fidelity and serve.convert in fidelity:
            target["labels"][FIDELITY_LABEL] = fidelity[serve.convert]
            target["labels"] = dict(sorted(target["labels"].items()))
        target.pop("tags", None)
        if by_digest:
            output = f"type=image,name={serve.image},push-by-digest=true,name-canonical=true"
        else:
            target["tags"] = [(staging or {})[name]]
            output = "type=image"
        target["output"] = [f"{output},push=true{output_suffix}"]
        targets[name] = target
        base = copy.deepcopy(full["target"][serve.base])
        base["platforms"] = [shard.platform]
        targets[serve.base] = base
    if cache:
        for name, target in targets.items():
            target.update(_cache(plan, name, shard.platform))
    return {"group": {"default": {"targets": list(shard.serves)}}, "target": targets}

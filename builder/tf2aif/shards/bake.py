"""Bake files for one shard (pure): the plan's bake file, cut down and re-pointed.

- convert shard, phase `local`: its conversions (and their toolchain bases) as in `tf2aif bake`,
  writing each artifact to .tf2aif/artifacts/<target> (the fidelity gate runs here);
- convert shard, phase `push`: the same targets (every step a cache hit) exported as an image
  for every platform their server images need, tagged with the content address and labelled
  with the address and the measured fidelity;
- build shard, phase `bases`: its runtime bases for one platform, pushed as images (no
  provenance, so the same layers give the same digest on every runner);
- build shard, phase `serve`: its server targets for that platform, `base` and `artifact` both
  taken from the registry by digest (`docker-image://…@sha256:…`), pushed by digest or under a
  staging tag (never a final tag).

Why the base is an image here rather than a `target:` context: with `target:` the serve build
solves the base's steps again as an input, and on a fresh runner BuildKit then often found no
cache record for the steps after the base (`COPY --from=artifact`, `COPY lib-serve`) although the
registry cache held them under the same keys: its scheduler logged "no cache match possible"
after looking them up with the base's keys and ran the steps, whose layers then carry that
runner's directory times (docs/gitops.md, section 7). A base taken by digest is a plain image
source, keyed by the image alone, the same on every runner, and those steps are found.

Registry cache refs carry the platform, so runners of different arches never overwrite each
other's cache of the same target. Every target exports to its own ref and imports the refs of
every target built with it, so no build depends on which one reached a shared step first.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from tf2aif.pipeline.bake import EmitOptions, bake_dict
from tf2aif.pipeline.plan import Plan
from tf2aif.shards.matrix import MAX_TAG, BuildShard, ConvertShard, arch_of

__all__ = [
    "FIDELITY_LABEL",
    "base_ref",
    "build_shard_bake",
    "build_shard_bases_bake",
    "convert_shard_bake",
    "fidelity_label",
]

FIDELITY_LABEL = "io.tf2aif.fidelity"


def fidelity_label(report: Mapping[str, Any]) -> str:
    return json.dumps(report, sort_keys=True, separators=(",", ":"))


def _cache_repository(plan: Plan) -> str:
    return f"{plan.registry}/{plan.name}-cache" if plan.registry else f"{plan.name}-cache"


def base_ref(plan: Plan, base: str, platform: str, address: str) -> str:
    """The tag a build shard pushes a runtime base under for one platform: its content address
    (the base target's content digest), never moved, so a runner finds a base another runner
    already pushed and does not build it again (the docker driver cannot push by digest alone;
    the serve phase pins the digest)."""
    repository = f"{plan.registry}/{plan.name}-bases" if plan.registry else f"{plan.name}-bases"
    hexdigest = address.removeprefix("sha256:")
    name = f"{base}-{arch_of(platform)}"
    return f"{repository}:{name[: MAX_TAG - len(hexdigest) - 1]}-{hexdigest}"


def _cache_ref(plan: Plan, name: str, platform: str | None) -> str:
    return f"{_cache_repository(plan)}:{name}" + (f"-{arch_of(platform)}" if platform else "")


def _add_cache(targets: dict[str, dict[str, Any]], refs: Mapping[str, str]) -> None:
    """cache-to its own ref; cache-from its own ref first, then every other target's."""
    for name, target in targets.items():
        imports = [refs[name], *sorted(refs[n] for n in targets if n != name)]
        target["cache-from"] = [f"type=registry,ref={ref}" for ref in imports]
        target["cache-to"] = [f"type=registry,ref={refs[name]},mode=max"]


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
    if cache:
        _add_cache(targets, {name: _cache_ref(plan, name, None) for name in targets})
    for name, target in targets.items():
        if push is None or name not in shard.converts:
            continue
        target["tags"] = [push[name]]
        target["output"] = ["type=image,push=true" + output_suffix]
        target["platforms"] = list((platforms or {}).get(name, ()))
        target["labels"] = dict(sorted((labels or {}).get(name, {}).items()))
        if not target["platforms"]:
            del target["platforms"]
    return {"group": {"default": {"targets": list(shard.converts)}}, "target": targets}


def build_shard_bases_bake(
    plan: Plan,
    shard: BuildShard,
    *,
    refs: Mapping[str, str],
    cache: bool = False,
    output_suffix: str = "",
) -> dict[str, Any]:
    """Phase `bases`: `refs` maps each runtime base to build -> the tag to push it under, for the
    shard's platform only."""
    full = bake_dict(plan, EmitOptions())
    targets: dict[str, dict[str, Any]] = {}
    for name in refs:
        base = copy.deepcopy(full["target"][name])
        base["platforms"] = [shard.platform]
        base["output"] = [f"type=image,name={refs[name]},push=true{output_suffix}"]
        # a provenance attestation records build times: the pushed digest would differ per run
        base["attest"] = ["type=provenance,disabled=true"]
        targets[name] = base
    if cache:
        _add_cache(targets, {name: _cache_ref(plan, name, shard.platform) for name in targets})
    return {"group": {"default": {"targets": list(targets)}}, "target": targets}


def build_shard_bake(
    plan: Plan,
    shard: BuildShard,
    *,
    artifacts: Mapping[str, str],
    bases: Mapping[str, str],
    staging: Mapping[str, str] | None = None,
    fidelity: Mapping[str, str] | None = None,
    cache: bool = False,
    by_digest: bool = False,
    output_suffix: str = "",
) -> dict[str, Any]:
    """Phase `serve`: `artifacts` maps conversion -> `repo@sha256:…`, `bases` maps runtime base
    -> `repo@sha256:…` (what phase `bases` pushed); `staging` maps server target -> the staging
    tag to push under; with `by_digest` the image is pushed by digest with no tag at all
    (builders other than the docker driver); `fidelity` maps conversion -> its label value."""
    full = bake_dict(plan, EmitOptions())
    serves = {s.name: s for s in plan.serves}
    targets: dict[str, dict[str, Any]] = {}
    for name in shard.serves:
        serve = serves[name]
        target = copy.deepcopy(full["target"][name])
        target["platforms"] = [shard.platform]
        target["contexts"]["artifact"] = f"docker-image://{artifacts[serve.convert]}"
        target["contexts"]["base"] = f"docker-image://{bases[serve.base]}"
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
    if cache:
        _add_cache(targets, {name: _cache_ref(plan, name, shard.platform) for name in targets})
    return {"group": {"default": {"targets": list(shard.serves)}}, "target": targets}

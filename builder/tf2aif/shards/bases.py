"""A build shard's phase `bases`: its runtime bases for the shard's platform, pushed as images
under their content address (found in the registry: taken as they are), so the serve phase takes
each base by digest. See tf2aif.shards.bake for why a base is an image there."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from tf2aif.pipeline.bake import EmitOptions, bake_dict, staged_files
from tf2aif.pipeline.build import BuildOptions, Buildx, run_phase
from tf2aif.pipeline.digests import image_digests
from tf2aif.pipeline.plan import Plan
from tf2aif.shards.bake import base_ref, build_shard_bases_bake
from tf2aif.shards.matrix import BuildShard

__all__ = ["base_addresses", "push_bases"]


def base_addresses(plan: Plan, names: list[str]) -> dict[str, str]:
    """Content digests of runtime base targets, computed like the plan's image digests."""
    return image_digests(
        bake_dict(plan, EmitOptions()),
        names,
        root=Path(plan.root),
        staged=staged_files(plan),
    )


def push_bases(
    plan: Plan,
    shard: BuildShard,
    options: BuildOptions,
    *,
    cache: bool,
    sink: Callable[[str], None],
    lookup: Callable[[str], str | None],
    buildx: Buildx,
    write_bake: Callable[[str, Mapping[str, Any]], str],
    output_suffix: str = "",
) -> tuple[dict[str, str], dict[str, str]]:
    """(base -> `repo@sha256:…`, base -> why it failed) for every base the shard's images use."""
    names = list(dict.fromkeys(s.base for s in plan.serves if s.name in shard.serves))
    addresses = base_addresses(plan, names)
    refs = {n: base_ref(plan, n, shard.platform, addresses[n]) for n in names}
    pushed, failed = {}, {}
    with ThreadPoolExecutor(max_workers=8) as pool:
        digests = dict(zip(names, pool.map(lambda n: lookup(refs[n]), names), strict=True))
    for name in names:
        if digests[name] is not None:
            sink(f"{name}: {refs[name]} is already in the registry: not built again")
            pushed[name] = f"{refs[name].rsplit(':', 1)[0]}@{digests[name]}"
    todo = {n: refs[n] for n in names if n not in pushed}
    if not todo:
        return pushed, failed
    bake = build_shard_bases_bake(plan, shard, refs=todo, cache=cache, output_suffix=output_suffix)
    # buildx arguments after `--` are meant for the server targets, which this phase lacks
    phase_options = replace(options, push=True, load=False, set_values=(), extra_args=())
    for result in run_phase(
        Path(plan.root),
        list(todo),
        phase_options,
        sink=sink,
        label=f"{shard.name}-bases",
        bake_file=write_bake(f"{shard.name}-bases", bake),
        buildx=buildx,
    ):
        if result and result.digest:
            pushed[result.target] = f"{todo[result.target].rsplit(':', 1)[0]}@{result.digest}"
        else:
            failed[result.target] = result.reason or "no digest reported"
    return pushed, failed

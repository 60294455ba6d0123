"""Run one shard on this runner (edge) and say what it pushed as a ShardRecord.

Convert shard: a conversion whose content address is already in the registry is not run again;
the others run once (local phase: artifact folder + fidelity gate), then the same targets, all
cache hits, are pushed as one image per conversion under its content address.
Build shard: every artifact it needs must already be in the registry (else the shard fails
before building anything); its runtime bases are built and pushed first, then the server targets
take base and artifact by digest, are built for the shard's platform only and pushed by digest
(builders that can) or under a staging tag (the docker driver), never under a final tag.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from tf2aif import __version__
from tf2aif.pipeline.bake import (
    ARTIFACTS_DIR,
    bake_json,
    write_build_dir,
)
from tf2aif.pipeline.build import (
    BuildOptions,
    Result,
    Status,
    check_tools,
    probe_buildx,
    run_phase,
)
from tf2aif.pipeline.imagetools import raw_digest
from tf2aif.pipeline.plan import BUILD_DIR, Plan
from tf2aif.pipeline.publish import PublishTarget, staging_tag
from tf2aif.shards.bake import (
    FIDELITY_LABEL,
    build_shard_bake,
    convert_shard_bake,
    fidelity_label,
)
from tf2aif.shards.bases import push_bases
from tf2aif.shards.matrix import (
    ARTIFACT_LABEL,
    BuildShard,
    ConvertShard,
    Shards,
    arch_of,
    artifact_ref,
    content_digest,
    conversion_address,
)
from tf2aif.shards.record import ShardConversion, ShardImage, ShardRecord, now_utc
from tf2aif.shards.registry import artifact_fidelity, pinned_artifact, platform_manifest

__all__ = ["run_build_shard", "run_convert_shard"]

LineSink = Callable[[str], None]
Lookup = Callable[[str], str | None]
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tf2aif-shard")


def tool_versions() -> dict[str, str]:
    tools = {"tf2aif": __version__, "buildx": check_tools()}
    proc = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode == 0:
        tools["docker"] = proc.stdout.strip()
    return tools


def _write_bake(root: Path, name: str, bake: Mapping[str, Any]) -> str:
    relative = f"{BUILD_DIR}/docker-bake.{name}.json"
    (root / relative).write_text(json.dumps(bake, indent=2, sort_keys=True) + "\n")
    return relative


def _suffix(options: BuildOptions) -> str:
    return ",rewrite-timestamp=true" if options.rewrite_timestamps else ""


def run_convert_shard(
    plan: Plan,
    shards: Shards,
    shard: ConvertShard,
    options: BuildOptions,
    *,
    cache: bool = False,
    sink: LineSink = print,
    lookup: Lookup = raw_digest,
) -> ShardRecord:
    write_build_dir(plan, bake_json(plan))
    converts = {c.name: c for c in plan.converts}
    addresses = {n: conversion_address(plan, converts[n]) for n in shard.converts}
    refs = {n: artifact_ref(plan, converts[n], addresses[n]) for n in shard.converts}
    done: dict[str, ShardConversion] = {}
    todo = []
    for name in shard.converts:
        digest = lookup(refs[name])
        if digest is None:
            todo.append(name)
            continue
        sink(f"{name}: {refs[name]} is already in the registry: not converted again")
        done[name] = ShardConversion(
            target=name,
            address=addresses[name],
            status=Status.SUCCESS.value,
            reason="already in the registry under its content address",
            reference=refs[name],
            digest=digest,
            reused=True,
            fidelity=artifact_fidelity(f"{refs[name]}@{digest}"),
        )
    if todo:
        todo_shard = replace(shard, converts=tuple(todo))
        done.update(_convert(plan, todo_shard, options, refs, sink, cache=cache))
    conversions = tuple(done[n] for n in shard.converts)
    return ShardRecord(
        name=plan.name,
        plan=shards.fingerprint,
        shard=shard.name,
        stage="convert",
        runner=shard.runner,
        platform="",
        status=_overall(c.status for c in conversions),
        created=now_utc(),
        tools=tool_versions(),
        source_date_epoch=options.source_date_epoch,
        conversions=conversions,
    )


def _convert(
    plan: Plan,
    shard: ConvertShard,
    options: BuildOptions,
    refs: Mapping[str, str],
    sink: LineSink,
    *,
    cache: bool,
) -> dict[str, ShardConversion]:
    root = Path(plan.root)
    converts = {c.name: c for c in plan.converts}
    local_options = replace(options, push=False, sbom=False)
    bake_file = _write_bake(root, shard.name, convert_shard_bake(plan, shard, cache=cache))
    results = run_phase(
        root, shard.converts, local_options, sink=sink, label=shard.name, bake_file=bake_file
    )
    by_name = {r.target: r for r in results}
    passed = [n for n in shard.converts if by_name[n]]
    fidelity = {n: _read_fidelity(root / ARTIFACTS_DIR / n) for n in passed}
    pushed: dict[str, Result] = {}
    if passed:
        platforms = {
            n: tuple(sorted({p for s in plan.serves if s.convert == n for p in s.platforms}))
            for n in passed
        }
        labels = {
            n: {
                ARTIFACT_LABEL: conversion_address(plan, converts[n]),
                **({FIDELITY_LABEL: fidelity_label(fidelity[n])} if fidelity[n] else {}),
            }
            for n in passed
        }
        bake = convert_shard_bake(
            plan,
            replace(shard, converts=tuple(passed)),
            cache=cache,
            push={n: refs[n] for n in passed},
            platforms=platforms,
            labels=labels,
            output_suffix=_suffix(options),
        )
        push_file = _write_bake(root, f"{shard.name}-push", bake)
        pushed = {
            r.target: r
            for r in run_phase(
                root,
                passed,
                local_options,
                sink=sink,
                label=f"{shard.name}-push",
                bake_file=push_file,
            )
        }
    out = {}
    for name in shard.converts:
        result = pushed.get(name) or by_name[name]
        out[name] = ShardConversion(
            target=name,
            address=conversion_address(plan, converts[name]),
            status=result.status.value,
            reason=result.reason,
            reference=refs[name],
            digest=result.digest if name in pushed and result else None,
            fidelity=fidelity.get(name, {}),
            duration=round(by_name[name].duration + (result.duration if name in pushed else 0), 3),
        )
    return out


def _read_fidelity(folder: Path) -> dict[str, Any]:
    report = folder / "fidelity.json"
    return json.loads(report.read_text()) if report.is_file() else {}


def _overall(statuses) -> str:
    return Status.SUCCESS.value if all(s == Status.SUCCESS.value for s in statuses) else "failed"


def run_build_shard(
    plan: Plan,
    shards: Shards,
    shard: BuildShard,
    options: BuildOptions,
    *,
    cache: bool = False,
    sink: LineSink = print,
    lookup: Lookup = raw_digest,
) -> ShardRecord:
    root = Path(plan.root)
    serves = {s.name: s for s in plan.serves}
    converts = {c.name: c for c in plan.converts}
    refs = {n: artifact_ref(plan, converts[n]) for n in shard.converts}
    # registry and tool probes overlap: on a warm runner they are most of the shard's time
    tools = _POOL.submit(tool_versions)
    artifacts, fidelity, missing = {}, {}, []
    for name, (digest, report) in zip(
        shard.converts,
        _POOL.map(lambda n: pinned_artifact(refs[n], lookup), shard.converts),
        strict=True,
    ):
        if digest is None:
            missing.append(name)
            continue
        artifacts[name] = digest
        if report:
            fidelity[name] = fidelity_label(report)
    results: dict[str, Result] = {}
    if missing:
        for name in shard.serves:
            convert = serves[name].convert
            reason = (
                f"its conversion {convert} is not in the registry ({refs[convert]}): "
                "run its convert shard first"
                if convert in missing
                else f"not built: conversions {', '.join(missing)} are missing"
            )
            status = Status.FAILED if convert in missing else Status.ABORTED
            results[name] = Result(target=name, status=status, reason=reason)
    else:
        write_build_dir(plan, bake_json(plan))
        buildx = probe_buildx(options.builder)
        by_digest = buildx.driver not in (None, "docker")
        run_id = f"{shards.fingerprint[7:19]}-{arch_of(shard.platform)}"
        staging = None
        if not by_digest:
            staging = {
                n: staging_tag(
                    PublishTarget(name=n, repository=serves[n].image, final_tags=serves[n].tags),
                    run_id,
                )
                for n in shard.serves
            }
        started = time.monotonic()
        bases, failed = push_bases(
            plan,
            shard,
            options,
            cache=cache,
            sink=sink,
            lookup=lookup,
            buildx=buildx,
            write_bake=lambda name, bake: _write_bake(root, name, bake),
            output_suffix=_suffix(options),
        )
        for name in shard.serves:
            if serves[name].base in failed:
                base = serves[name].base
                reason = f"its runtime base {base} failed: {failed[base]}"
                results[name] = Result(target=name, status=Status.FAILED, reason=reason)
        todo = [n for n in shard.serves if n not in results]
        if todo:
            bake = build_shard_bake(
                plan,
                replace(shard, serves=tuple(todo)),
                artifacts=artifacts,
                bases=bases,
                staging=staging,
                fidelity=fidelity,
                cache=cache,
                by_digest=by_digest,
                output_suffix=_suffix(options),
            )
            bake_file = _write_bake(root, shard.name, bake)
            for result in run_phase(
                root,
                todo,
                replace(options, push=True, load=False),
                sink=sink,
                label=shard.name,
                bake_file=bake_file,
                buildx=buildx,
            ):
                results[result.target] = result
        sink(f"{shard.name}: built in {time.monotonic() - started:.1f} s")
    images = []
    manifests = _POOL.map(
        lambda n: (
            platform_manifest(serves[n].image, results[n].digest, shard.platform)
            if results[n] and results[n].digest
            else None
        ),
        shard.serves,
    )
    for name, manifest in zip(shard.serves, manifests, strict=True):
        serve, result = serves[name], results[name]
        images.append(
            ShardImage(
                target=name,
                platform=shard.platform,
                content_digest=content_digest(serve),
                status=result.status.value,
                reason=result.reason,
                digest=result.digest if result else None,
                manifest=manifest,
                repository=serve.image,
                artifact=artifacts.get(serve.convert, ""),
                duration=round(result.duration, 3),
            )
        )
    return ShardRecord(
        name=plan.name,
        plan=shards.fingerprint,
        shard=shard.name,
        stage="build",
        runner=shard.runner,
        platform=shard.platform,
        status=_overall(i.status for i in images),
        created=now_utc(),
        tools=tools.result(),
        source_date_epoch=options.source_date_epoch,
        images=tuple(images),
    )

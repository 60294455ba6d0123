"""The one release step: shard records -> multi-arch indexes -> final tags -> the build record.

All or nothing. `check_release` (pure) accepts the records only when every shard of the plan is
there exactly once, made from this plan (same fingerprint), succeeded, and every server image
and conversion carries the content address the plan computes; otherwise it names each problem
and nothing is touched. `assemble` (edge) then:
  1. merges the per-platform pushes of each server image into one index
     (`docker buildx imagetools create`) under a release staging tag, keeping the plan's index
     annotations; any failure here stops before a final tag moves;
  2. points every final tag at its index digest, only once every index exists.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tf2aif.errors import BuildError, ReleaseError
from tf2aif.pipeline.bake import INDEX_ANNOTATIONS
from tf2aif.pipeline.imagetools import create_argv, raw_digest
from tf2aif.pipeline.plan import Plan
from tf2aif.shards.matrix import Shards, content_digest, conversion_addresses
from tf2aif.shards.record import ShardRecord

__all__ = [
    "IndexPlan",
    "ReleaseError",
    "ReleasePlan",
    "assemble",
    "check_release",
    "index_argv",
]

Runner = Callable[..., subprocess.CompletedProcess]


@dataclass(frozen=True, kw_only=True)
class IndexPlan:
    """One server image: its per-platform pushes merged into one index, then tagged."""

    target: str
    repository: str
    sources: tuple[str, ...]  # repo@sha256:… per platform, in the plan's platform order
    tags: tuple[str, ...]  # final tags, content tag first
    annotations: tuple[str, ...] = ()  # index:key=value
    staging: str = ""  # repo:tag the index is assembled under before any final tag moves


@dataclass(frozen=True, kw_only=True)
class ReleasePlan:
    indexes: tuple[IndexPlan, ...]
    fidelity: Mapping[str, Mapping] = field(default_factory=dict)  # conversion -> report
    durations: Mapping[str, float] = field(default_factory=dict)  # target -> seconds (sum)


def check_release(plan: Plan, shards: Shards, records: Sequence[ShardRecord]) -> ReleasePlan:
    problems: list[str] = []
    failed: list[str] = []
    by_shard: dict[str, ShardRecord] = {}
    for record in records:
        if record.plan != shards.fingerprint or record.name != plan.name:
            problems.append(
                f"shard {record.shard}: made from another plan ({record.name} {record.plan[:19]}, "
                f"this release is {plan.name} {shards.fingerprint[:19]}): rebuild it from this commit"
            )
        elif record.shard in by_shard:
            problems.append(f"shard {record.shard}: given twice")
        elif record.shard not in shards.names():
            problems.append(f"shard {record.shard}: not a shard of this plan")
        else:
            by_shard[record.shard] = record
    for name in shards.names():
        if name not in by_shard and not any(p.startswith(f"shard {name}:") for p in problems):
            problems.append(
                f"shard {name}: no record (the shard did not run or its record was lost)"
            )
    addresses = conversion_addresses(plan)
    serves = {s.name: s for s in plan.serves}
    fidelity: dict[str, Mapping] = {}
    durations: dict[str, float] = {}
    artifacts: dict[str, str] = {}
    for shard in shards.converts:
        record = by_shard.get(shard.name)
        if record is None:
            continue
        got = {c.target: c for c in record.conversions}
        for name in shard.converts:
            conversion = got.get(name)
            if conversion is None:
                problems.append(f"shard {shard.name}: {name} missing from its record")
                continue
            if conversion.status != "success" or not conversion.digest:
                failed.append(name)
                problems.append(
                    f"shard {shard.name}: {name} {conversion.status}: {conversion.reason}"
                )
                continue
            address = addresses[name]
            if conversion.address != address:
                problems.append(
                    f"shard {shard.name}: {name} has content address {conversion.address}, "
                    f"the plan says {address}"
                )
            fidelity[name] = conversion.fidelity
            durations[name] = durations.get(name, 0.0) + conversion.duration
            artifacts[name] = f"{conversion.reference.rsplit(':', 1)[0]}@{conversion.digest}"
    pushed: dict[tuple[str, str], str] = {}
    for shard in shards.builds:
        record = by_shard.get(shard.name)
        if record is None:
            continue
        got = {(i.target, i.platform): i for i in record.images}
        for name in shard.serves:
            image = got.get((name, shard.platform))
            if image is None:
                problems.append(
                    f"shard {shard.name}: {name} ({shard.platform}) missing from its record"
                )
                continue
            if image.status != "success" or not image.digest:
                failed.append(name)
                problems.append(
                    f"shard {shard.name}: {name} ({shard.platform}) {image.status}: {image.reason}"
                )
                continue
            expected = content_digest(serves[name])
            if image.content_digest != expected:
                problems.append(
                    f"shard {shard.name}: {name} has content address {image.content_digest}, "
                    f"the plan says {expected}"
                )
            convert = serves[name].convert
            if convert in artifacts and image.artifact != artifacts[convert]:
                problems.append(
                    f"shard {shard.name}: {name} was built from {image.artifact or 'no artifact'}, "
                    f"not the released conversion {artifacts[convert]}"
                )
            pushed[(name, shard.platform)] = image.digest
            durations[name] = durations.get(name, 0.0) + image.duration
    if problems:
        raise ReleaseError(problems, failed=sorted(set(failed)))
    indexes = tuple(
        IndexPlan(
            target=serve.name,
            repository=serve.image,
            sources=tuple(f"{serve.image}@{pushed[(serve.name, p)]}" for p in serve.platforms),
            tags=serve.tags,
            annotations=tuple(
                f"index:{key}={serve.labels[key]}"
                for key in INDEX_ANNOTATIONS
                if key in serve.labels and "," not in serve.labels[key]
            ),
            staging=f"{serve.image}:"
            + f"tf2aif-release-{shards.fingerprint[7:19]}-{serve.name}"[:128],
        )
        for serve in plan.serves
    )
    return ReleasePlan(indexes=indexes, fidelity=fidelity, durations=durations)


def index_argv(index: IndexPlan) -> list[str]:
    """Merge the per-platform pushes into one index under the release staging tag."""
    return create_argv(sources=index.sources, tags=(index.staging,), annotations=index.annotations)


def assemble(
    release: ReleasePlan, *, run: Runner = subprocess.run, sink: Callable[[str], None] = print
) -> dict[str, str]:
    """Merge every index, then move every final tag; returns target -> index digest."""
    digests: dict[str, str] = {}
    for index in release.indexes:
        proc = run(index_argv(index), capture_output=True, text=True)
        digest = raw_digest(index.staging, run=run) if proc.returncode == 0 else None
        if digest is None:
            error = (proc.stderr or "").strip()[-1500:]
            raise BuildError(
                f"assembling {index.target} from {', '.join(index.sources)} failed; no final tag "
                f"was created or moved:\n{error}",
                failed=[index.target],
            )
        digests[index.target] = digest
        sink(f"{index.target}: index {digest} ({len(index.sources)} platforms)")
    for index in release.indexes:
        source = f"{index.repository}@{digests[index.target]}"
        proc = run(create_argv(sources=(source,), tags=index.tags), capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(
                f"tagging {source} as {', '.join(index.tags)} failed:\n"
                f"{(proc.stderr or '').strip()[-1500:]}",
                failed=[index.target],
            )
        for tag in index.tags:
            sink(f"tagged {tag}")
    return digests


def describe(release: ReleasePlan) -> str:
    """What `tf2aif release --print` shows: the merges and tags it would make."""
    return json.dumps(
        [
            {"target": i.target, "sources": list(i.sources), "tags": list(i.tags)}
            for i in release.indexes
        ],
        indent=2,
    )

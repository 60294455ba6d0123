"""Shards: one release split across CI runners (pure).

The CI system schedules, BuildKit builds, the registry carries artifacts and cache; tf2aif only
cuts the plan into shards here and merges them in `release`. Two stages:

- **convert shards** run every conversion of the plan exactly once and push each artifact to the
  registry as an image under its content address (`<registry>/<name>-artifacts:<target>-<hex>`);
  one shard per converter toolchain (each runner pulls one toolchain image), or one per
  conversion with `split="target"`. Conversions run on the build platform, so any amd64 runner
  takes them.
- **build shards** build server images for one OCI platform each, on a runner of that
  architecture (and accelerator), taking each artifact from the registry by digest through the
  named context `artifact=docker-image://…@sha256:…`. One shard per (runner label, platform), or
  one per (server target, platform) with `split="target"`.

Every (server target, platform) of the plan lands in exactly one build shard, every conversion
a server target needs in exactly one convert shard. The same plan gives the same shards, names
and order.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tf2aif.errors import PlanError, did_you_mean
from tf2aif.pipeline.digests import json_digest
from tf2aif.pipeline.plan import ConvertTarget, Plan, ServeTarget, target_name

__all__ = [
    "ARTIFACT_LABEL",
    "CONTENT_LABEL",
    "ConvertShard",
    "BuildShard",
    "Shards",
    "Split",
    "artifact_ref",
    "arch_of",
    "conversion_address",
    "conversion_addresses",
    "content_digest",
    "find_shard",
    "matrix",
    "plan_fingerprint",
    "plan_shards",
    "runner_label",
]

CONTENT_LABEL = "io.tf2aif.content-digest"  # set by the plan on every server image
ARTIFACT_LABEL = "io.tf2aif.conversion-address"
# Accelerators need runners that carry them; plain CPUs only need the architecture.
ACCELERATOR_RUNNERS: Mapping[str, str] = MappingProxyType(
    {"nvidia-gpu": "gpu", "nvidia-jetson": "jetson", "xilinx-alveo": "alveo"}
)
CONVERT_RUNNER = "amd64"  # conversions run on $BUILDPLATFORM: any amd64 runner
MAX_TAG = 128


class Split(str, enum.Enum):
    PLATFORM = "platform"  # one build shard per (runner label, platform)
    TARGET = "target"  # one build shard per (server target, platform)


@dataclass(frozen=True, kw_only=True)
class ConvertShard:
    name: str
    runner: str
    converts: tuple[str, ...]  # conversion target names


@dataclass(frozen=True, kw_only=True)
class BuildShard:
    name: str
    runner: str
    platform: str  # one OCI platform, e.g. linux/arm64
    serves: tuple[str, ...]  # server target names, each built for `platform` only
    converts: tuple[str, ...]  # conversions those targets take from the registry


@dataclass(frozen=True, kw_only=True)
class Shards:
    converts: tuple[ConvertShard, ...]
    builds: tuple[BuildShard, ...]
    fingerprint: str  # what a shard record must carry to be merged into this plan

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in (*self.converts, *self.builds))


def arch_of(platform: str) -> str:
    """`linux/arm64/v8` -> `arm64`."""
    parts = platform.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


def _variants_by_platform(plan: Plan, serve: ServeTarget) -> dict[str, list]:
    by_id = {v.id: v for v in plan.variants}
    out: dict[str, list] = {}
    for variant_id in serve.variants:
        variant = by_id[variant_id]
        out.setdefault(variant.oci_platform, []).append(variant)
    return out


def runner_label(plan: Plan, serve: ServeTarget, platform: str) -> str:
    """The kind of runner a (server target, platform) needs: its accelerator's runner
    (gpu, jetson, alveo), else its CPU architecture (amd64, arm64)."""
    variants = _variants_by_platform(plan, serve).get(platform, [])
    accelerators = sorted({v.accelerator for v in variants if v.accelerator})
    if accelerators:
        return ACCELERATOR_RUNNERS.get(accelerators[0], accelerators[0])
    return arch_of(platform)


def plan_shards(
    plan: Plan, *, split: Split = Split.PLATFORM, runners: Mapping[str, str] = {}
) -> Shards:
    """`runners` maps a runner kind (amd64, arm64, gpu, jetson, alveo) to the label a team's
    runners carry; it changes only the labels in the matrix, never shard names or records."""
    serves = {s.name: s for s in plan.serves}
    cells: dict[tuple[str, str], list[str]] = {}  # (shard name, platform) -> serve names
    labels: dict[tuple[str, str], str] = {}
    for serve in plan.serves:
        for platform in serve.platforms:
            label = runner_label(plan, serve, platform)
            arch = arch_of(platform)
            if split is Split.TARGET:
                name = target_name("build", serve.name.removeprefix("serve-"), arch)
            else:
                name = target_name("build", label if label == arch else f"{label}-{arch}")
            cells.setdefault((name, platform), []).append(serve.name)
            labels[(name, platform)] = label
    builds = tuple(
        BuildShard(
            name=name,
            runner=runners.get(labels[(name, platform)], labels[(name, platform)]),
            platform=platform,
            serves=tuple(members),
            converts=tuple(dict.fromkeys(serves[s].convert for s in members)),
        )
        for (name, platform), members in sorted(cells.items())
    )
    if len({b.name for b in builds}) != len(builds):  # two platforms of one arch (arm/v7, v8)
        builds = tuple(
            BuildShard(
                name=target_name(b.name, b.platform.split("/", 1)[1].replace("/", "")),
                runner=b.runner,
                platform=b.platform,
                serves=b.serves,
                converts=b.converts,
            )
            for b in builds
        )
    needed = dict.fromkeys(s.convert for s in plan.serves)
    by_toolchain: dict[str, list[str]] = {}
    for convert in plan.converts:
        if convert.name not in needed:
            continue
        key = convert.name if split is Split.TARGET else convert.base.removeprefix("base-")
        by_toolchain.setdefault(key, []).append(convert.name)
    converts = tuple(
        ConvertShard(
            name=key
            if split is Split.TARGET
            else target_name("convert", key.removeprefix("convert-")),
            runner=runners.get(CONVERT_RUNNER, CONVERT_RUNNER),
            converts=tuple(members),
        )
        for key, members in sorted(by_toolchain.items())
    )
    return Shards(
        converts=converts, builds=builds, fingerprint=plan_fingerprint(plan, converts, builds)
    )


def plan_fingerprint(
    plan: Plan, converts: Sequence[ConvertShard], builds: Sequence[BuildShard]
) -> str:
    """One digest over every content address and the shard layout: shard records made from a
    different manifest, model, toolchain or split cannot be merged into this release."""
    return json_digest(
        {
            "name": plan.name,
            "images": {s.name: content_digest(s) for s in plan.serves},
            "conversions": conversion_addresses(plan),
            "converts": [[s.name, list(s.converts)] for s in converts],
            "builds": [[s.name, s.platform, list(s.serves)] for s in builds],
        }
    )


def find_shard(shards: Shards, name: str) -> ConvertShard | BuildShard:
    for shard in (*shards.converts, *shards.builds):
        if shard.name == name:
            return shard
    known = shards.names()
    raise PlanError(
        f"shard {name!r} is not in the plan{did_you_mean(name, known)}; shards: {', '.join(known)}"
    )


def content_digest(serve: ServeTarget) -> str:
    """The plan's content address of a server image (its `io.tf2aif.content-digest` label)."""
    return serve.labels[CONTENT_LABEL]


def conversion_address(plan: Plan, convert: ConvertTarget) -> str:
    """What a conversion's artifact is made of: the content digest of its bake target (spec,
    toolchain base, model and plug-in contexts, the converter code copied into its stage).
    Equal addresses mean the artifact in the registry can be used as is."""
    return convert.content_digest


def conversion_addresses(plan: Plan) -> dict[str, str]:
    """Every conversion's content address."""
    return {c.name: c.content_digest for c in plan.converts}


def artifact_repository(plan: Plan) -> str:
    prefix = f"{plan.registry}/" if plan.registry else ""
    return f"{prefix}{plan.name}-artifacts"


def artifact_ref(plan: Plan, convert: ConvertTarget, address: str | None = None) -> str:
    """The tag a conversion's artifact is pushed under: its content address, never moved."""
    hexdigest = (address or conversion_address(plan, convert)).removeprefix("sha256:")
    tag = f"{convert.name}-{hexdigest}"
    if len(tag) > MAX_TAG:
        tag = f"{convert.name[: MAX_TAG - 65]}-{hexdigest}"
    return f"{artifact_repository(plan)}:{tag}"


def matrix(plan: Plan, shards: Shards) -> dict[str, Any]:
    """The CI matrix: `convert` and `build` each as `{"include": [...]}` (GitHub Actions'
    `strategy.matrix: ${{ fromJSON(...).build }}`; GitLab reads the same rows)."""
    converts = {c.name: c for c in plan.converts}
    return {
        "plan": shards.fingerprint,
        "name": plan.name,
        "shards": list(shards.names()),
        "convert": {
            "include": [
                {
                    "shard": s.name,
                    "runner": s.runner,
                    "targets": " ".join(s.converts),
                    "variants": " ".join(v for c in s.converts for v in converts[c].variants),
                }
                for s in shards.converts
            ]
        },
        "build": {
            "include": [
                {
                    "shard": s.name,
                    "runner": s.runner,
                    "platform": s.platform,
                    "arch": arch_of(s.platform),
                    "targets": " ".join(s.serves),
                }
                for s in shards.builds
            ]
        },
    }


def gitlab_pipeline(
    shards: Shards, *, template: str, extra_args: Sequence[str] = ()
) -> dict[str, Any]:
    """A GitLab child pipeline (JSON is YAML): a job per shard, on runners tagged with its
    label, then one release job that needs every shard's record. The jobs extend the hidden
    jobs `.tf2aif-shard` and `.tf2aif-release` of the project's `template` file."""
    args = "".join(f" {a}" for a in extra_args)
    jobs: dict[str, Any] = {
        "include": [{"local": template}],
        "stages": ["convert", "build", "release"],
    }
    for shard in (*shards.converts, *shards.builds):
        stage = "convert" if isinstance(shard, ConvertShard) else "build"
        job: dict[str, Any] = {
            "extends": ".tf2aif-shard",
            "stage": stage,
            "tags": [shard.runner],
            "variables": {"TF2AIF_SHARD": shard.name, "TF2AIF_SHARD_ARGS": args.strip()},
        }
        if stage == "build":
            job["needs"] = [s.name for s in shards.converts]
        jobs[shard.name] = job
    jobs["tf2aif-release"] = {
        "extends": ".tf2aif-release",
        "stage": "release",
        "variables": {"TF2AIF_PLAN": shards.fingerprint, "TF2AIF_SHARD_ARGS": args.strip()},
        "needs": [{"job": name, "artifacts": True} for name in shards.names()],
    }
    return jobs

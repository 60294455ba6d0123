"""GitOps-safe publishing: push under staging tags, tag for real only when every target built.

BuildKit's docker driver cannot push by digest alone, so a bake with `--push` first pushes each
image under a *staging* tag (`<repo>:tf2aif-staging-<run>-<target>`, never a tag anyone
deploys). buildx writes each target's pushed digest into its `--metadata-file`. Only when the
bake succeeded and every published target has a digest are the final tags created, each with
`docker buildx imagetools create -t <final tag> <repo>@<digest>`, which points the tag at the
very manifest (index) that was built. If anything failed, no final tag is touched.
`tf2aif bake --push` (build.run_build) takes exactly this path.

Pure: `publish_targets`, `staging_tag`, `staging_set_values`, `read_metadata`, `plan_tags`.
Edge: `apply_tags`, `publish_final_tags`.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tf2aif.errors import BuildError, PlanError
from tf2aif.pipeline.imagetools import create_argv

if TYPE_CHECKING:
    from tf2aif.pipeline.plan import ClientTarget, Plan, ServeTarget

__all__ = [
    "PublishTarget",
    "PushedImage",
    "TagPlan",
    "apply_tags",
    "plan_tags",
    "publish_final_tags",
    "publish_targets",
    "read_metadata",
    "split_tag",
    "staging_set_values",
    "staging_tag",
]

_TAG_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_TAG = 128


@dataclass(frozen=True, kw_only=True)
class PublishTarget:
    """A bake target whose image is published under `final_tags` (all in one repository)."""

    name: str
    repository: str  # e.g. 127.0.0.1:5000/tf2aif/digits
    final_tags: tuple[str, ...]  # full references: repository:tag


@dataclass(frozen=True, kw_only=True)
class PushedImage:
    """What buildx reports for one target in its --metadata-file."""

    target: str
    name: str  # image.name: the reference(s) it was pushed under
    digest: str  # containerimage.digest: the manifest or index digest


@dataclass(frozen=True, kw_only=True)
class TagPlan:
    target: str
    source: str  # repository@digest
    tags: tuple[str, ...]


def split_tag(reference: str) -> tuple[str, str]:
    """`host:5000/a/b:tag` -> (`host:5000/a/b`, `tag`); a missing tag is `latest`."""
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:  # the colon belonged to host:port
        return reference, "latest"
    return name, tag


def publish_targets(
    plan: Plan, images: Sequence[ServeTarget | ClientTarget]
) -> tuple[PublishTarget, ...]:
    """The images `--push` publishes: each under its final tags, all in its own repository."""
    if not plan.registry:
        raise PlanError("--push needs `registry:` in the manifest (e.g. registry.example.com/team)")
    result = []
    for image in images:
        if not image.tags:
            raise BuildError(f"target {image.name} has no tags to publish")
        others = sorted({split_tag(tag)[0] for tag in image.tags} - {image.image})
        if others:
            raise BuildError(
                f"target {image.name}: tags outside its repository {image.image}: {others}"
            )
        result.append(PublishTarget(name=image.name, repository=image.image, final_tags=image.tags))
    return tuple(result)


def staging_tag(target: PublishTarget, run_id: str) -> str:
    """A tag no deployment uses, unique per run and target, valid per the OCI tag grammar."""
    tag = _TAG_CHARS.sub("-", f"tf2aif-staging-{run_id}-{target.name}")
    if len(tag) > _MAX_TAG:
        digest = hashlib.sha256(tag.encode()).hexdigest()[:16]
        tag = f"{tag[: _MAX_TAG - 17]}-{digest}"
    return f"{target.repository}:{tag}"


def staging_set_values(targets: Sequence[PublishTarget], run_id: str, *, output: str) -> list[str]:
    """bake `--set` values that push each target under its staging tag only."""
    values: list[str] = []
    for target in targets:
        values.append(f"{target.name}.tags={staging_tag(target, run_id)}")
        values.append(f"{target.name}.output={output}")
    return values


def read_metadata(path: Path) -> dict[str, PushedImage]:
    """Per target: image name and digest from buildx's --metadata-file (missing file: {})."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text() or "{}")
    pushed = {}
    for target, info in data.items():
        if isinstance(info, dict) and info.get("containerimage.digest"):
            pushed[target] = PushedImage(
                target=target,
                name=str(info.get("image.name", "")),
                digest=str(info["containerimage.digest"]),
            )
    return pushed


def plan_tags(
    targets: Sequence[PublishTarget], pushed: Mapping[str, PushedImage], *, bake_ok: bool
) -> tuple[TagPlan, ...]:
    """Every final tag to create, or BuildError (and nothing to tag) if any target failed."""
    missing = [t.name for t in targets if t.name not in pushed]
    if not bake_ok or missing:
        failed = missing or [t.name for t in targets]
        raise BuildError(
            "nothing was published: the build failed"
            + (f" for {', '.join(missing)}" if missing else "")
            + "; no final tag was created or moved",
            failed=failed,
        )
    return tuple(
        TagPlan(
            target=t.name,
            source=f"{t.repository}@{pushed[t.name].digest}",
            tags=t.final_tags,
        )
        for t in targets
    )


Runner = Callable[..., subprocess.CompletedProcess]


def apply_tags(plans: Sequence[TagPlan], *, run: Runner | None = None) -> tuple[str, ...]:
    """Create every final tag; returns the tags created, BuildError on the first failure."""
    run = run or subprocess.run
    created: list[str] = []
    for plan in plans:
        result = run(
            create_argv(sources=(plan.source,), tags=plan.tags), capture_output=True, text=True
        )
        if result.returncode != 0:
            done = ", ".join(created) or "none"
            raise BuildError(
                f"tagging {plan.source} as {', '.join(plan.tags)} failed (already tagged: "
                f"{done}):\n{result.stderr.strip()[-1500:]}",
                failed=[plan.target],
            )
        created += plan.tags
    return tuple(created)


def publish_final_tags(
    metadata: Path, targets: Sequence[PublishTarget], *, run: Runner | None = None
) -> tuple[str, ...]:
    """After a bake that pushed every target under staging tags: the final tags, each pointed
    at the digest buildx reported; BuildError (nothing tagged) if a target has no digest."""
    return apply_tags(plan_tags(targets, read_metadata(metadata), bake_ok=True), run=run)

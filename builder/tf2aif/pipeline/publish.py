"""GitOps-safe publishing: push under staging tags, tag for real only when every target built.

BuildKit's docker driver cannot push by digest alone, so a bake with `--push` first pushes each
image under a *staging* tag (`<repo>:tf2aif-staging-<run>-<target>`, never a tag anyone
deploys). buildx writes each target's pushed digest into its `--metadata-file`. Only when the
bake succeeded and every published target has a digest are the final tags created, each with
`docker buildx imagetools create -t <final tag> <repo>@<digest>`, which points the tag at the
very manifest (index) that was built. If anything failed, no final tag is touched.

Pure: `publish_targets`, `staging_tag`, `staging_set_values`, `staging_overrides`,
`read_metadata`, `plan_tags`, `imagetools_argv`, `failed_steps`. Edge: `apply_tags`.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf2aif.errors import BuildError

__all__ = [
    "FailedStep",
    "PublishTarget",
    "PushedImage",
    "TagPlan",
    "apply_tags",
    "failed_steps",
    "imagetools_argv",
    "plan_tags",
    "publish_targets",
    "read_metadata",
    "split_tag",
    "staging_overrides",
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


@dataclass(frozen=True, kw_only=True)
class FailedStep:
    """A build step that failed, as named in buildx's plain progress output."""

    target: str  # bake target, e.g. convert-tflite-int8
    step: str  # e.g. "RUN python -m tf2aif.image.convert ..."
    error: str


def split_tag(reference: str) -> tuple[str, str]:
    """`host:5000/a/b:tag` -> (`host:5000/a/b`, `tag`); a missing tag is `latest`."""
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:  # the colon belonged to host:port
        return reference, "latest"
    return name, tag


def publish_targets(
    bake: Mapping[str, Any], names: Sequence[str] = ()
) -> tuple[PublishTarget, ...]:
    """Targets of a bake file that carry tags (serve images), optionally only `names`."""
    targets = bake.get("target", {})
    chosen = names or sorted(name for name, spec in targets.items() if spec.get("tags"))
    result = []
    for name in chosen:
        tags = tuple(targets[name].get("tags") or ())
        if not tags:
            raise BuildError(f"target {name} has no tags to publish")
        repositories = {split_tag(tag)[0] for tag in tags}
        if len(repositories) != 1:
            raise BuildError(
                f"target {name}: tags span several repositories {sorted(repositories)}"
            )
        result.append(PublishTarget(name=name, repository=repositories.pop(), final_tags=tags))
    return tuple(result)


def staging_tag(target: PublishTarget, run_id: str) -> str:
    """A tag no deployment uses, unique per run and target, valid per the OCI tag grammar."""
    tag = _TAG_CHARS.sub("-", f"tf2aif-staging-{run_id}-{target.name}")
    if len(tag) > _MAX_TAG:
        digest = hashlib.sha256(tag.encode()).hexdigest()[:16]
        tag = f"{tag[: _MAX_TAG - 17]}-{digest}"
    return f"{target.repository}:{tag}"


def staging_set_values(
    targets: Sequence[PublishTarget], run_id: str, *, output: str = "type=image,push=true"
) -> list[str]:
    """bake `--set` values that push each target under its staging tag only."""
    values: list[str] = []
    for target in targets:
        values.append(f"{target.name}.tags={staging_tag(target, run_id)}")
        values.append(f"{target.name}.output={output}")
    return values


def staging_overrides(targets: Sequence[PublishTarget], run_id: str) -> list[str]:
    """The same as `docker buildx bake` arguments."""
    return [arg for value in staging_set_values(targets, run_id) for arg in ("--set", value)]


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


def imagetools_argv(plan: TagPlan) -> list[str]:
    argv = ["docker", "buildx", "imagetools", "create"]
    for tag in plan.tags:
        argv += ["-t", tag]
    return [*argv, plan.source]


# buildx plain progress: "#12 [convert-tflite-int8 3/3] RUN python -m ..." ... "#12 ERROR: ...".
# bake prefixes step names with the target only when it builds more than one target.
_STEP = re.compile(r"^#(\d+) \[(?P<label>[^\]]+)\] (?P<step>.+)$")
_ERROR = re.compile(r"^#(\d+) ERROR: (?P<error>.+)$")


def failed_steps(progress: str, targets: Sequence[str]) -> tuple[FailedStep, ...]:
    """Failed steps of `targets`, from `--progress=plain` output."""
    names: dict[str, tuple[str, str]] = {}
    failed = []
    for line in progress.splitlines():
        if match := _STEP.match(line):
            first = match["label"].split(" ", 1)[0]
            target = first if first in targets else targets[0] if len(targets) == 1 else ""
            if target:
                names.setdefault(match[1], (target, match["step"]))
        elif (match := _ERROR.match(line)) and match[1] in names:
            target, step = names[match[1]]
            failed.append(FailedStep(target=target, step=step, error=match["error"]))
    return tuple(dict.fromkeys(failed))


Runner = Callable[..., subprocess.CompletedProcess]


def apply_tags(plans: Sequence[TagPlan], *, run: Runner = subprocess.run) -> tuple[str, ...]:
    """Create every final tag; returns the tags created, BuildError on the first failure."""
    created: list[str] = []
    for plan in plans:
        result = run(imagetools_argv(plan), capture_output=True, text=True)
        if result.returncode != 0:
            done = ", ".join(created) or "none"
            raise BuildError(
                f"tagging {plan.source} as {', '.join(plan.tags)} failed (already tagged: "
                f"{done}):\n{result.stderr.strip()[-1500:]}",
                failed=[plan.target],
            )
        created += plan.tags
    return tuple(created)

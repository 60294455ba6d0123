"""Stage 5, bake: run `docker buildx bake` on the emitted file.

Argv is built by pure functions (tested as lists); the subprocess runs in one thin wrapper.
Two phases, so nothing is built or published from a model that failed its fidelity gate:
  1. the conversion targets the selected images need (each writes its artifact to
     .tf2aif/artifacts/<target>; a broken fidelity threshold fails its stage);
  2. the server images, labelled with the fidelity their artifact measured.
Results come from buildx's --metadata-file, never from parsing logs; logs are only used to name
the stage that failed.

One module (over 400 lines) because it is the one subprocess edge of the bake: the pure argv,
the buildx probe it depends on, the two phases and the failure attribution of their logs change
together; which images to build lives in `select`, publishing in `publish`.
"""

from __future__ import annotations

import enum
import functools
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tf2aif.bases.folders import DEFAULT_SBOM_GENERATOR
from tf2aif.errors import BuildError, ToolMissingError
from tf2aif.pipeline.bake import ARTIFACTS_DIR, BAKE_FILE, read_bake
from tf2aif.pipeline.imagetools import raw_digest
from tf2aif.pipeline.plan import BUILD_DIR, Plan, ServeTarget
from tf2aif.pipeline.publish import publish_final_tags, publish_targets, staging_set_values
from tf2aif.pipeline.select import check_content_tags, select_images

__all__ = [
    "DEFAULT_SBOM_GENERATOR",
    "BuildOptions",
    "Buildx",
    "Result",
    "Status",
    "bake_argv",
    "build_env",
    "builder_driver",
    "check_tools",
    "failing_targets",
    "fidelity_labels",
    "parse_buildx_version",
    "parse_driver",
    "probe_buildx",
    "run_build",
    "run_phase",
    "sbom_generator",
]

LineSink = Callable[[str], None]
_FAILED_STEP = re.compile(r"^\s*> \[(?P<label>[^\]]+)\]")
_TARGET_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_ERROR_TARGET = re.compile(r"target (?P<target>[a-zA-Z0-9_-]+): failed to solve")


class Status(str, enum.Enum):
    SUCCESS = "success"
    FAILED = "failed"
    ABORTED = "aborted"  # a target it depends on failed


@dataclass(frozen=True, kw_only=True)
class Result:
    target: str
    status: Status
    reason: str = ""
    duration: float = 0.0
    digest: str | None = None
    image: str | None = None

    def __bool__(self) -> bool:
        return self.status is Status.SUCCESS


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    only: tuple[str, ...] = ()  # fnmatch patterns over variant ids or target names
    changed: bool = False  # skip images whose content tag already exists in the registry
    sbom: bool = False  # BuildKit SBOM attestation on every server image
    sbom_generator: str = DEFAULT_SBOM_GENERATOR  # the scanner image BuildKit runs for it
    push: bool = False
    load: bool = True  # load server images into the local image store when not pushing
    set_values: tuple[str, ...] = ()  # extra bake --set values
    extra_args: tuple[str, ...] = ()  # passed to buildx as written
    ca_file: str | None = None  # proxy CA, passed to base image builds as the secret `ca`
    builder: str | None = None
    progress: str = "plain"
    source_date_epoch: str | None = None  # build timestamps pinned for reproducible images
    rewrite_timestamps: bool = False  # clamp layer file times too (not on the docker driver)


def sbom_generator(
    *, explicit: str | None, env: Mapping[str, str], vendor_map: Mapping[str, str]
) -> str:
    """The SBOM generator image, first found wins: --sbom-generator, $TF2AIF_SBOM_GENERATOR,
    the vendor map's replacement for BuildKit's default generator (a mirror, or the local
    scanner `tf2aif bases --local` maps), that default (docker/buildkit-syft-scanner)."""
    return (
        explicit
        or env.get("TF2AIF_SBOM_GENERATOR")
        or vendor_map.get(DEFAULT_SBOM_GENERATOR)
        or DEFAULT_SBOM_GENERATOR
    )


def split_unchanged(
    serves: Sequence[ServeTarget], lookup: Callable[[str], str | None]
) -> tuple[tuple[ServeTarget, ...], tuple[Result, ...]]:
    """(images to build, results of images whose content tag is already published)."""
    changed, unchanged = [], []
    for serve in serves:
        digest = lookup(serve.tags[0])
        if digest is None:
            changed.append(serve)
        else:
            reason = f"unchanged: {serve.tags[0]} is already published"
            unchanged.append(
                Result(
                    target=serve.name,
                    status=Status.SUCCESS,
                    reason=reason,
                    digest=digest,
                    image=serve.tags[0],
                )
            )
    return tuple(changed), tuple(unchanged)


def bake_argv(
    bake_file: str,
    targets: Sequence[str],
    *,
    metadata_file: str,
    options: BuildOptions,
    buildx: Buildx,
    set_values: Sequence[str] = (),
) -> list[str]:
    """The `docker buildx bake` command line (pure: what buildx can do comes in `buildx`)."""
    argv = ["docker", "buildx", "bake", "-f", bake_file, "--metadata-file", metadata_file]
    argv += ["--progress", options.progress]
    if options.builder:
        argv += ["--builder", options.builder]
    if options.ca_file:
        # Every target gets it: buildx solves a linked base target inside its consumer's build,
        # with the consumer's secrets. Only base_images/ Dockerfiles mount it (RUN --mount), so it
        # never lands in a layer.
        argv += ["--set", f"*.secrets=id=ca,src={options.ca_file}"]
        if buildx.secret_needs_entitlement:
            argv += ["--allow", f"fs.read={Path(options.ca_file).parent}"]
    if options.push:
        argv.append("--provenance=mode=max")  # SLSA provenance attached to every pushed image
    if options.sbom:
        # Per target, not `--sbom` (= `*.attest`): that would also scan every linked target bake
        # solves as a context (bases, conversions) and throw those SBOMs away. BuildKit runs the
        # generator image on the build platform over each target platform's root file system.
        attest = f"type=sbom,generator={options.sbom_generator}"
        for target in targets:
            argv += ["--set", f"{target}.attest={attest}"]
    for value in (*set_values, *options.set_values):
        argv += ["--set", value]
    argv += list(options.extra_args)
    argv += list(targets)
    return argv


@dataclass(frozen=True, kw_only=True)
class Buildx:
    """What the installed buildx is and how its builder works, asked once per run."""

    version: tuple[int, ...]  # (0,) when it could not be read
    driver: str | None  # docker, docker-container, kubernetes, remote; None when unknown

    @property
    def secret_needs_entitlement(self) -> bool:
        """buildx >= 0.19 asks for an entitlement to read a secret outside the bake folder."""
        return self.version >= (0, 19)


def parse_buildx_version(text: str) -> tuple[int, ...]:
    """`github.com/docker/buildx v0.19.3 48d6a39` -> (0, 19, 3); (0,) when no version is there."""
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in match.groups()) if match else (0,)


def parse_driver(text: str) -> str | None:
    """The `Driver:` line of `docker buildx inspect`."""
    match = re.search(r"(?m)^Driver:\s*(\S+)", text)
    return match.group(1) if match else None


@functools.cache
def probe_buildx(builder: str | None) -> Buildx:
    """`docker buildx version` and `docker buildx inspect`, once per builder per process."""
    return Buildx(
        version=parse_buildx_version(_output(["docker", "buildx", "version"], timeout=30)),
        driver=parse_driver(
            _output(["docker", "buildx", "inspect", *([builder] if builder else [])], timeout=60)
        ),
    )


def builder_driver(builder: str | None) -> str | None:
    """The buildx driver of `builder` (default: the current one): docker, docker-container, ..."""
    return probe_buildx(builder).driver


def _output(argv: Sequence[str], *, timeout: float) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def check_tools() -> str:
    """The buildx version line, or ToolMissingError saying what to install."""
    if shutil.which("docker") is None:
        raise ToolMissingError(
            "docker is not installed: install the Docker CLI with the buildx plugin (scripts/docker-up.sh does it on Debian)"
        )
    try:
        proc = subprocess.run(
            ["docker", "buildx", "version"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolMissingError("`docker buildx version` did not answer within 30 s") from exc
    if proc.returncode != 0:
        raise ToolMissingError(
            f"docker buildx is not available: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc.stdout.strip()


def fidelity_labels(artifact_dir: Path) -> dict[str, str]:
    report = artifact_dir / "fidelity.json"
    if not report.is_file():
        return {}
    data = json.loads(report.read_text())
    labels = {"io.tf2aif.fidelity": json.dumps(data, sort_keys=True, separators=(",", ":"))}
    if "fallback" in data:  # what a precision-fallback candidate kept float
        labels["io.tf2aif.precision.detail"] = data["fallback"]["summary"]
    return labels


def run_build(
    plan: Plan, options: BuildOptions, *, sink: LineSink = print, buildx: Buildx | None = None
) -> tuple[Result, ...]:
    """Phase 1 (conversions) then phase 2 (server images); raises BuildError on failure.
    `buildx`: what the builder can do (default: asked once per process)."""
    root = Path(plan.root)
    buildx = buildx or probe_buildx(options.builder)
    serves, clients = select_images(plan, options.only)
    unchanged: tuple[Result, ...] = ()
    if options.changed:
        check_content_tags(serves, read_bake(root / BAKE_FILE), root)
        serves, unchanged = split_unchanged(serves, raw_digest)
        for result in unchanged:
            sink(f"{result.target}: {result.reason}")
        if not serves and not clients:
            return unchanged
    converts = tuple(dict.fromkeys(s.convert for s in serves))
    # A conversion's output is an artifact folder, not an image: nothing to describe in an SBOM
    # (and the local exporter would write the SBOM into the artifact).
    convert_options = replace(options, sbom=False)
    results = list(
        run_phase(root, converts, convert_options, sink=sink, label="convert", buildx=buildx)
    )
    failed = [r for r in results if not r]
    if failed:
        aborted = [_aborted(s, failed) for s in serves if s.convert in {r.target for r in failed}]
        raise _build_error(plan, [*results, *aborted])
    set_values = []
    for serve in serves:
        for key, value in fidelity_labels(root / ARTIFACTS_DIR / serve.convert).items():
            set_values.append(f"{serve.name}.labels.{key}={value}")
    images = (*serves, *clients)
    publish = publish_targets(plan, images) if options.push else ()
    if publish:
        # Pushed under staging tags only: final tags move after every target has pushed.
        run_id = f"{int(time.time())}-{os.getpid()}"
        set_values += staging_set_values(publish, run_id, output=_serve_output(options))
    else:
        set_values += [f"{image.name}.output={_serve_output(options)}" for image in images]
    results += run_phase(
        root,
        [image.name for image in images],
        options,
        sink=sink,
        label="serve",
        set_values=set_values,
        buildx=buildx,
    )
    if any(not r for r in results):
        raise _build_error(plan, results)
    if publish:
        for tag in publish_final_tags(root / BUILD_DIR / "metadata-serve.json", publish):
            sink(f"tagged {tag}")
    return (*results, *unchanged)


def _serve_output(options: BuildOptions) -> str:
    # with SOURCE_DATE_EPOCH, file times in the layers are clamped to it too, not only the config
    pinned = ",rewrite-timestamp=true" if options.rewrite_timestamps else ""
    if options.push:
        return "type=image,push=true" + pinned
    return "type=docker" + pinned if options.load else "type=cacheonly"


def run_phase(
    root: Path,
    targets: Sequence[str],
    options: BuildOptions,
    *,
    sink: LineSink,
    label: str,
    set_values: Sequence[str] = (),
    bake_file: str = BAKE_FILE,
    buildx: Buildx | None = None,
) -> list[Result]:
    """One `docker buildx bake` run over `targets`: a Result each, from its metadata file."""
    metadata = root / BUILD_DIR / f"metadata-{label}.json"
    metadata.unlink(missing_ok=True)
    argv = bake_argv(
        bake_file,
        targets,
        metadata_file=str(metadata.relative_to(root)),
        options=options,
        buildx=buildx or probe_buildx(options.builder),
        set_values=set_values,
    )
    started = time.monotonic()
    code, log_tail = _run(argv, cwd=root, sink=sink, env=build_env(options))
    duration = time.monotonic() - started
    meta = json.loads(metadata.read_text()) if metadata.is_file() else {}
    if code == 0:
        return [_success(t, meta.get(t, {}), duration) for t in targets]
    failing = failing_targets(log_tail, targets) or dict.fromkeys(targets, "build failed (see log)")
    return [
        Result(
            target=t,
            status=Status.FAILED,
            reason=failing.get(t, "build failed (see log)"),
            duration=duration,
        )
        if t in failing
        else _success(t, meta.get(t, {}), duration)
        if t in meta
        else Result(
            target=t,
            status=Status.ABORTED,
            reason="the bake run stopped on another target's failure",
            duration=duration,
        )
        for t in targets
    ]


def _success(target: str, meta: Mapping[str, Any], duration: float) -> Result:
    return Result(
        target=target,
        status=Status.SUCCESS,
        duration=duration,
        digest=meta.get("containerimage.digest"),
        image=meta.get("image.name"),
    )


def _aborted(serve: ServeTarget, failed: Sequence[Result]) -> Result:
    return Result(
        target=serve.name, status=Status.ABORTED, reason=f"its conversion {serve.convert} failed"
    )


def failing_targets(log: Sequence[str], targets: Sequence[str]) -> dict[str, str]:
    """target -> 'stage: first error line', from buildx's `> [target stage n/m] RUN ...`
    summary (or `target x: failed to solve`). bake leaves the target out of the step label when
    it builds a single target, so then every failed step is that target's. A name that is not
    in `targets` (a linked base target) is kept: it says why the others stopped."""
    found: dict[str, str] = {}
    for i, line in enumerate(log):
        if match := _FAILED_STEP.match(line):
            first, _, rest = match["label"].partition(" ")
            if len(targets) == 1 and first not in targets:
                target, stage = targets[0], match["label"]
            elif _TARGET_NAME.fullmatch(first):
                target, stage = first, rest
            else:
                continue
        elif match := _ERROR_TARGET.search(line):
            target, stage = match["target"], ""
        else:
            continue
        detail = next(
            (x.strip() for x in log[i + 1 : i + 40] if "ERROR" in x or "Error" in x), line.strip()
        )
        found.setdefault(target, f"{stage}: {detail}" if stage else detail)
    return found


def build_env(options: BuildOptions, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """buildx hands SOURCE_DATE_EPOCH from its environment to every target as a build arg."""
    env = {k: v for k, v in environ.items() if k != "SOURCE_DATE_EPOCH"}
    if options.source_date_epoch:
        env["SOURCE_DATE_EPOCH"] = options.source_date_epoch
    return env


def _run(
    argv: Sequence[str], *, cwd: Path, sink: LineSink, env: Mapping[str, str]
) -> tuple[int, list[str]]:
    tail: list[str] = []
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
    except OSError as exc:
        raise ToolMissingError(f"cannot run {argv[0]}: {exc}") from exc
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        sink(line)
        tail.append(line)
        del tail[:-400]
    return proc.wait(), tail


def _build_error(plan: Plan, results: Sequence[Result]) -> BuildError:
    variants = {t.name: t.variants for t in (*plan.converts, *plan.serves)}
    lines = []
    for r in results:
        if r.status is Status.SUCCESS:
            continue
        which = ", ".join(variants.get(r.target, ()))
        lines.append(f"  {r.status.value:8} {r.target} ({which}): {r.reason}")
    failed = [r.target for r in results if r.status is Status.FAILED]
    return BuildError(
        "build failed; nothing was published:\n" + "\n".join(lines), failed=failed, results=results
    )

"""Stage 3, plan: Resolution -> Plan (pure).

Groups variants into build targets the way bake wants them:
- one conversion target per distinct (runtime, precision, converter input, converter image,
  options, thresholds), shared by every platform that serves it;
- one server image per (runtime, precision, conversion, runtime base image): platforms that share
  a runtime image (tflite on cpu and arm) become one multi-arch image;
- one base image target per (base_images folder, vendor image).
Names, tags and labels are derived from content only, so the same inputs give the same plan:
an image's content tag is the digest of what its bake graph reads (tf2aif.pipeline.digests), computed
from the graph this plan emits.

One module: stage 3 of the flow; its frozen values and the grouping rules are read together (the
digests themselves live in pipeline/digests.py).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from tf2aif import __version__
from tf2aif.errors import PlanError
from tf2aif.image.convert.spec import ConvertSpec, PluginRef
from tf2aif.pipeline.digests import CONTENT_DIGEST_LABEL, image_digests, json_digest
from tf2aif.pipeline.manifest import Manifest
from tf2aif.pipeline.resolve import Resolution, SkippedCell, Variant

__all__ = [
    "BUILD_DIR",
    "BaseTarget",
    "ConvertTarget",
    "Plan",
    "ServeTarget",
    "local_convert_spec",
    "make_plan",
    "target_name",
]

CLIENT_BASE = "bench-client"
CLIENT_VENDOR = "python:3.11-slim-bookworm"
BUILD_DIR = ".tf2aif"  # next to the manifest: bake file, Dockerfiles, artifacts, metadata
CONTEXT_DIR = f"{BUILD_DIR}/context"
EMPTY_CONTEXT = f"{CONTEXT_DIR}/empty"
_VALID_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")  # buildx validTargetNameChars


@dataclass(frozen=True, kw_only=True)
class BaseTarget:
    name: str
    folder: str  # base_images/<folder>
    vendor: str
    platforms: tuple[str, ...] = ()  # empty: the build platform (converter toolchains)


@dataclass(frozen=True, kw_only=True)
class ConvertTarget:
    name: str
    runtime: str
    precision: str
    base: str  # BaseTarget name
    spec: ConvertSpec  # paths inside the build stage (/src)
    local_spec: ConvertSpec  # paths relative to the manifest's folder
    contexts: Mapping[str, str]  # named contexts: model, plugins
    variants: tuple[str, ...]
    # from the bake graph, like an image's: the artifact's address in a registry (shards)
    content_digest: str = ""


@dataclass(frozen=True, kw_only=True)
class ServeTarget:
    name: str
    runtime: str
    precision: str
    variants: tuple[str, ...]
    platform_names: tuple[str, ...]
    platforms: tuple[str, ...]  # OCI platforms
    base: str
    convert: str
    image: str  # repository, without tag
    tags: tuple[str, ...]  # full references; the first is the content tag
    labels: Mapping[str, str]
    args: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class ClientTarget:
    """The bench client image: tf2aif's load generator, for every platform the servers run on."""

    name: str
    base: str
    platforms: tuple[str, ...]
    image: str
    tags: tuple[str, ...]
    labels: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class Plan:
    name: str
    manifest_file: str
    root: str
    model_digest: str
    registry: str
    bases: tuple[BaseTarget, ...]
    converts: tuple[ConvertTarget, ...]
    serves: tuple[ServeTarget, ...]
    groups: Mapping[str, tuple[str, ...]]
    variants: tuple[Variant, ...]
    skipped: tuple[SkippedCell, ...]
    client: ClientTarget | None = None
    notes: tuple[str, ...] = ()  # what a runtime does differently for this model

    def target_names(self) -> tuple[str, ...]:
        client = (self.client,) if self.client else ()
        return tuple(t.name for t in (*self.bases, *self.converts, *self.serves, *client))


def target_name(*parts: str) -> str:
    """Every bake target name is made here, and checked against buildx's rule."""
    name = "-".join(p.replace(".", "_") for p in parts if p)
    if not _VALID_NAME.match(name):
        raise PlanError(
            f"target name {name!r} has characters buildx does not accept (allowed: a-z A-Z 0-9 _ -)"
        )
    return name


def make_plan(resolution: Resolution, *, env: Mapping[str, str] | None = None) -> Plan:
    env = env or {}
    manifest = resolution.manifest
    bases = _bases(resolution.variants)
    converts = _converts(manifest, resolution.variants, bases)
    serves = _serves(manifest, resolution.variants, bases, converts, env)
    client = None
    if manifest.client:
        vendor = resolution.vendor_map.get(CLIENT_VENDOR, CLIENT_VENDOR)
        platforms = tuple(sorted({p for s in serves for p in s.platforms}))
        base = BaseTarget(
            name=target_name("base", CLIENT_BASE),
            folder=CLIENT_BASE,
            vendor=vendor,
            platforms=platforms,
        )
        bases[(CLIENT_BASE, vendor)] = base
        client = _client(manifest, base)
    plan = Plan(
        name=manifest.name,
        manifest_file=manifest.file.name,
        root=str(manifest.root),
        model_digest=manifest.model.digest,
        registry=manifest.registry,
        bases=tuple(sorted(bases.values(), key=lambda b: b.name)),
        converts=tuple(converts.values()),
        serves=serves,
        groups=_groups(manifest, serves, converts.values(), client),
        variants=resolution.variants,
        skipped=resolution.skipped,
        client=client,
        notes=resolution.notes,
    )
    _check_links(plan)
    return _addressed(plan)


def _addressed(plan: Plan) -> Plan:
    """The plan with content tags and digest labels: each image's digest is computed from the
    bake graph the plan emits (tags and digest labels are outputs, so the digest of the final
    graph is the same), reading the build folder's files from where they will be copied."""
    # bake emits from a Plan, so it is imported here rather than at the top
    from tf2aif.pipeline.bake import bake_dict, staged_files

    images = (*plan.serves, *((plan.client,) if plan.client else ()))
    digests = image_digests(
        bake_dict(plan),
        [t.name for t in (*images, *plan.converts)],
        root=Path(plan.root),
        staged=staged_files(plan),
    )

    def address(image):
        content = digests[image.name]
        labels = {
            **image.labels,
            "org.opencontainers.image.version": content[7:19],
            CONTENT_DIGEST_LABEL: content,
        }
        return replace(
            image,
            tags=(f"{image.tags[0]}-{content[7:19]}", *image.tags),
            labels=MappingProxyType(dict(sorted(labels.items()))),
        )

    client = address(plan.client) if plan.client else None
    return replace(
        plan,
        serves=tuple(address(s) for s in plan.serves),
        client=client,
        converts=tuple(replace(c, content_digest=digests[c.name]) for c in plan.converts),
    )


# -- base images ---------------------------------------------------------------------------


def _bases(variants: Iterable[Variant]) -> dict[tuple[str, str], BaseTarget]:
    """One target per (folder, vendor); serve bases get the union of their consumers' platforms."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for v in variants:
        for ref, platform in ((v.converter_image, None), (v.runtime_image, v.oci_platform)):
            key = (ref.base, ref.vendor)
            wanted.setdefault(key, set())
            if platform:
                wanted[key].add(platform)
    folders: dict[str, int] = {}
    for folder, _ in wanted:
        folders[folder] = folders.get(folder, 0) + 1
    out = {}
    for (folder, vendor), platforms in sorted(wanted.items()):
        suffix = json_digest(vendor)[7:13] if folders[folder] > 1 else ""
        out[(folder, vendor)] = BaseTarget(
            name=target_name("base", folder, suffix),
            folder=folder,
            vendor=vendor,
            platforms=tuple(sorted(platforms)),
        )
    return out


# -- conversions ---------------------------------------------------------------------------


def _convert_key(v: Variant) -> tuple:
    return (
        v.runtime,
        v.precision,
        v.backend,
        v.converter_input,
        v.converter_image,
        tuple(v.options.items()),
        v.thresholds,
    )


def _converts(
    manifest: Manifest, variants: tuple[Variant, ...], bases: Mapping
) -> dict[tuple, ConvertTarget]:
    groups: dict[tuple, list[Variant]] = {}
    for v in variants:
        groups.setdefault(_convert_key(v), []).append(v)
    per_cell: dict[tuple[str, str], int] = {}
    for runtime, precision, *_ in groups:
        per_cell[(runtime, precision)] = per_cell.get((runtime, precision), 0) + 1
    out = {}
    for key, members in groups.items():
        first = members[0]
        suffix = ""
        if per_cell[(first.runtime, first.precision)] > 1:
            suffix = first.converter_input + "-" + json_digest(repr(key))[7:13]
        name = target_name("convert", first.runtime, first.precision, suffix)
        base = bases[(first.converter_image.base, first.converter_image.vendor)]
        out[key] = ConvertTarget(
            name=name,
            runtime=first.runtime,
            precision=first.precision,
            base=base.name,
            spec=_spec(manifest, first, layout="build"),
            local_spec=_spec(manifest, first, layout="local"),
            contexts=MappingProxyType(_contexts(manifest)),
            variants=tuple(v.id for v in members),
        )
    return out


def _plugin_modules(manifest: Manifest) -> list[str]:
    modules = [manifest.processing] if manifest.processing else []
    modules += [ref.module for ref in (manifest.calibration, manifest.fidelity_samples) if ref]
    return modules


def _plugins_dir(manifest: Manifest) -> str | None:
    """The folder holding every plug-in module: it is what the build stage gets as `plugins`."""
    modules = _plugin_modules(manifest)
    if not modules:
        return None
    return (
        posixpath.commonpath([posixpath.dirname(posixpath.normpath(m)) or "." for m in modules])
        or "."
    )


def _contexts(manifest: Manifest) -> dict[str, str]:
    model = posixpath.normpath(manifest.model.path)
    model_dir = (posixpath.dirname(model) or ".") if manifest.model.kind == "keras" else model
    return {"model": model_dir, "plugins": _plugins_dir(manifest) or EMPTY_CONTEXT}


def _spec(manifest: Manifest, v: Variant, *, layout: str) -> ConvertSpec:
    plugins_dir = _plugins_dir(manifest)

    def place(module: str) -> str:
        if layout == "local":
            return posixpath.normpath(module)
        return posixpath.join("plugins", posixpath.relpath(posixpath.normpath(module), plugins_dir))

    def ref(plugin: PluginRef | None) -> PluginRef | None:
        return replace(plugin, module=place(plugin.module)) if plugin else None

    # Calibration data only matters to int8, or as fidelity samples when none are given: leaving
    # it out elsewhere keeps fp32/fp16 conversions cached when only the calibration set changes.
    calibration = (
        manifest.calibration if v.precision == "int8" or not manifest.fidelity_samples else None
    )

    model = posixpath.normpath(manifest.model.path)
    if layout == "build":
        model = "model/" + posixpath.basename(model) if manifest.model.kind == "keras" else "model"
    return ConvertSpec(
        name=manifest.name,
        runtime=v.runtime,
        precision=v.precision,
        backend=v.backend,
        model=model,
        signature=manifest.model.signature,
        processing=place(manifest.processing) if manifest.processing else None,
        plugins_dir=(plugins_dir if layout == "local" else "plugins") if plugins_dir else None,
        calibration=ref(calibration),
        fidelity_samples=ref(manifest.fidelity_samples),
        thresholds=v.thresholds,
        options=MappingProxyType(dict(v.options)),
    )


def local_convert_spec(plan: Plan, variant_id: str) -> ConvertSpec:
    """The conversion a variant needs, with paths relative to the manifest (for `tf2aif convert`)."""
    for target in plan.converts:
        if variant_id in target.variants:
            return target.local_spec
    known = ", ".join(v.id for v in plan.variants)
    raise PlanError(f"variant {variant_id!r} is not in the plan; planned variants: {known}")


# -- server images -------------------------------------------------------------------------


def _serves(
    manifest: Manifest,
    variants: tuple[Variant, ...],
    bases: Mapping[tuple[str, str], BaseTarget],
    converts: Mapping[tuple, ConvertTarget],
    env: Mapping[str, str],
) -> tuple[ServeTarget, ...]:
    groups: dict[tuple, list[Variant]] = {}
    for v in variants:
        key = (
            v.runtime,
            v.precision,
            converts[_convert_key(v)].name,
            v.runtime_image.base,
            v.runtime_image.vendor,
        )
        groups.setdefault(key, []).append(v)
    return tuple(
        _serve(manifest, members, bases[(key[3], key[4])], converts[_convert_key(members[0])], env)
        for key, members in groups.items()
    )


def _serve(
    manifest: Manifest,
    members: list[Variant],
    base: BaseTarget,
    convert: ConvertTarget,
    env: Mapping[str, str],
) -> ServeTarget:
    first = members[0]
    platform_names = tuple(dict.fromkeys(v.platform for v in members))
    platforms = tuple(sorted({v.oci_platform for v in members}))
    image = f"{manifest.registry}/{manifest.name}" if manifest.registry else manifest.name
    human = "-".join((first.runtime, first.precision, *platform_names))
    # the content tag (`<human>-<digest>`) goes first once the graph is digested (_addressed)
    tags = (f"{image}:{human}", *(f"{image}:{t}-{human}" for t in manifest.tags))
    args = {
        "TF2AIF_MAX_BATCH_SIZE": str(manifest.serve.max_batch_size),
        "TF2AIF_MAX_QUEUE_DELAY_MS": f"{manifest.serve.max_queue_delay_ms:g}",
        "TF2AIF_MAX_QUEUE_SIZE": str(manifest.serve.max_queue_size),
    }
    if manifest.serve.threads:
        args["TF2AIF_THREADS"] = str(manifest.serve.threads)
    return ServeTarget(
        name=target_name("serve", *platform_names, first.runtime, first.precision),
        runtime=first.runtime,
        precision=first.precision,
        variants=tuple(v.id for v in members),
        platform_names=platform_names,
        platforms=platforms,
        base=base.name,
        convert=convert.name,
        image=image,
        tags=tags,
        labels=MappingProxyType(_labels(manifest, members, base, env)),
        args=MappingProxyType(args),
    )


def _labels(
    manifest: Manifest,
    members: list[Variant],
    base: BaseTarget,
    env: Mapping[str, str],
) -> dict[str, str]:
    first = members[0]
    labels = {
        "org.opencontainers.image.title": f"{manifest.name} ({first.runtime} {first.precision})",
        "org.opencontainers.image.description": manifest.description
        or f"{manifest.name} served with {first.runtime} at {first.precision} by tf2aif",
        "org.opencontainers.image.base.name": base.vendor,
        "io.tf2aif.version": __version__,
        "io.tf2aif.model.name": manifest.name,
        "io.tf2aif.model.digest": manifest.model.digest,
        "io.tf2aif.runtime": first.runtime,
        "io.tf2aif.precision": first.precision,
        "io.tf2aif.variants": ",".join(v.id for v in members),
        "io.tf2aif.recipe": ",".join(sorted({v.recipe for v in members})),
    }
    source, revision = _source(env)
    if source:
        labels["org.opencontainers.image.source"] = source
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    for v in members:
        labels.update(v.labels)
    return dict(sorted(labels.items()))


def _source(env: Mapping[str, str]) -> tuple[str, str]:
    """Source URL and revision from TF2AIF_SOURCE/TF2AIF_REVISION, or GitHub Actions/GitLab CI."""
    source = env.get("TF2AIF_SOURCE") or env.get("CI_PROJECT_URL", "")
    if not source and env.get("GITHUB_REPOSITORY"):
        source = f"{env.get('GITHUB_SERVER_URL', 'https://github.com')}/{env['GITHUB_REPOSITORY']}"
    revision = env.get("TF2AIF_REVISION") or env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA", "")
    return source, revision


def _client(manifest: Manifest, base: BaseTarget) -> ClientTarget:
    image = (
        f"{manifest.registry}/{manifest.name}-bench"
        if manifest.registry
        else f"{manifest.name}-bench"
    )
    labels = {
        "org.opencontainers.image.title": f"{manifest.name} bench client",
        "org.opencontainers.image.description": f"tf2aif bench: load generator for the {manifest.name} images",
        "org.opencontainers.image.base.name": base.vendor,
        "io.tf2aif.version": __version__,
    }
    return ClientTarget(
        name=target_name("client", "bench"),
        base=base.name,
        platforms=base.platforms,
        image=image,
        tags=(f"{image}:{__version__}",),  # the content tag goes first in _addressed
        labels=MappingProxyType(dict(sorted(labels.items()))),
    )


# -- groups and link checks ----------------------------------------------------------------


def _groups(
    manifest: Manifest,
    serves: tuple[ServeTarget, ...],
    converts: Iterable[ConvertTarget],
    client: ClientTarget | None,
) -> Mapping[str, tuple[str, ...]]:
    clients = (client.name,) if client else ()
    groups: dict[str, tuple[str, ...]] = {"default": tuple(s.name for s in serves) + clients}
    if client:
        groups["client"] = clients
    groups["convert"] = tuple(c.name for c in converts)
    for platform in dict.fromkeys(p for s in serves for p in s.platform_names):
        groups[platform] = tuple(s.name for s in serves if platform in s.platform_names)
    for runtime in dict.fromkeys(s.runtime for s in serves):
        groups.setdefault(runtime, tuple(s.name for s in serves if s.runtime == runtime))
    return MappingProxyType(groups)


def _check_links(plan: Plan) -> None:
    """The invariants buildx checks when it loads links, checked before anything is written."""
    names = plan.target_names()
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PlanError(f"duplicate target names: {', '.join(duplicates)}")
    clash = sorted(set(plan.groups) & set(names))
    if clash:
        raise PlanError(f"group names clash with target names: {', '.join(clash)}")
    bases = {b.name: b for b in plan.bases}
    converts = {c.name for c in plan.converts}
    for serve in plan.serves:
        if serve.convert not in converts or serve.base not in bases:
            raise PlanError(f"{serve.name}: links a target that is not in the plan")
        missing = set(serve.platforms) - set(bases[serve.base].platforms)
        if missing:
            raise PlanError(
                f"{serve.name}: platforms {sorted(missing)} are not built by {serve.base}"
            )

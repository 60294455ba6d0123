"""The reproducibility lock (`tf2aif.lock`, next to the manifest).

It pins what a build depends on but the manifest does not fix:
- every base image reference (vendor images, after the vendor map) resolved to a digest,
- the tool versions the base images install (requirements.txt pins, or `pip list` of a built base),
- a content digest of every input file (manifest, model, plug-ins, recipes, base image folders),
so `tf2aif lock --check` can say exactly what changed since the lock was written, and the
locked digests can be fed back to the build as a vendor map (ref -> ref@sha256:...).

Pure parts (digests, lock data, diff) take their inputs as arguments; the two image resolvers
(`docker buildx imagetools inspect`, or the registry HTTP API) and the `pip list` probe are the edge.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tf2aif.errors import Tf2aifError, ToolMissingError
from tf2aif.pipeline.yamlfile import file_problem, load_checked

__all__ = [
    "LOCK_FILE",
    "Lock",
    "LockError",
    "LockInputs",
    "LockedImage",
    "ResolvedImage",
    "Resolver",
    "ToolSet",
    "build_lock",
    "check_lock",
    "diff_locks",
    "digest_files",
    "dump_lock",
    "files_under",
    "imagetools_argv",
    "load_lock",
    "plan_inputs",
    "pip_list_argv",
    "probe_tools",
    "requirement_pins",
    "resolve_with_buildx",
    "resolve_with_registry",
    "write_lock",
    "write_vendor_map",
]

log = logging.getLogger(__name__)

LOCK_FILE = "tf2aif.lock"
LOCK_FORMAT = 1
_CHUNK = 1 << 20
_SKIP_PARTS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints"})
_HEADER = "# Written by `tf2aif lock`; checked by `tf2aif lock --check`. Do not edit by hand.\n"


class LockError(Tf2aifError):
    """The lock is missing, unreadable, out of date, or an image cannot be resolved."""


@dataclass(frozen=True, kw_only=True)
class ResolvedImage:
    digest: str  # sha256 of the manifest or index the reference points at
    platforms: tuple[str, ...] = ()  # "linux/amd64", ... (empty for a single-platform manifest)


Resolver = Callable[[str], ResolvedImage]


@dataclass(frozen=True, kw_only=True)
class ToolSet:
    source: str  # "base_images/convert-tf/requirements.txt" or "pip list in <image>"
    packages: Mapping[str, str]  # normalised name -> version


@dataclass(frozen=True, kw_only=True)
class LockInputs:
    """What one build depends on. `files` keys are the names stored in the lock."""

    manifest: str  # manifest path relative to the lock
    files: Mapping[str, Path]
    images: tuple[str, ...]  # image references as the recipes / base images name them
    vendor_map: Mapping[str, str] = field(default_factory=dict)  # ref -> replacement ref
    tools: Mapping[str, ToolSet] = field(default_factory=dict)  # base folder -> versions


@dataclass(frozen=True, kw_only=True)
class LockedImage:
    source: str  # what is actually pulled: the vendor map's replacement, else the ref itself
    digest: str
    platforms: tuple[str, ...] = ()

    @property
    def pinned(self) -> str:
        return f"{_strip_digest(self.source)}@{self.digest}"


@dataclass(frozen=True, kw_only=True)
class Lock:
    manifest: str
    files: Mapping[str, str]  # stored name -> sha256:...
    images: Mapping[str, LockedImage]  # ref -> what it resolved to
    tools: Mapping[str, ToolSet]
    format: int = LOCK_FORMAT

    def vendor_map(self) -> dict[str, str]:
        """ref -> ref@sha256:... : the form `tf2aif bake --vendor-map` takes."""
        return {ref: image.pinned for ref, image in sorted(self.images.items())}

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "manifest": self.manifest,
            "files": dict(sorted(self.files.items())),
            "images": {
                ref: {"source": i.source, "digest": i.digest, "platforms": list(i.platforms)}
                for ref, i in sorted(self.images.items())
            },
            "tools": {
                name: {"source": t.source, "packages": dict(sorted(t.packages.items()))}
                for name, t in sorted(self.tools.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lock:
        return cls(
            format=int(data.get("format", LOCK_FORMAT)),
            manifest=str(data["manifest"]),
            files={str(k): str(v) for k, v in (data.get("files") or {}).items()},
            images={
                str(ref): LockedImage(
                    source=str(i["source"]),
                    digest=str(i["digest"]),
                    platforms=tuple(i.get("platforms") or ()),
                )
                for ref, i in (data.get("images") or {}).items()
            },
            tools={
                str(name): ToolSet(source=str(t["source"]), packages=dict(t["packages"]))
                for name, t in (data.get("tools") or {}).items()
            },
        )


# --- files -------------------------------------------------------------------------------------


def files_under(root: Path) -> list[Path]:
    """Every regular file below `root` (or `root` itself), sorted, caches left out."""
    if root.is_file():
        return [root]
    found = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and not _SKIP_PARTS.intersection(p.relative_to(root).parts)
        and p.suffix != ".pyc"
    ]
    return sorted(found)


def _digest_file(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def digest_files(files: Mapping[str, Path]) -> dict[str, str]:
    return {name: _digest_file(path) for name, path in sorted(files.items())}


# --- tool versions -----------------------------------------------------------------------------

_PIN = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*===?\s*([^\s;#]+)\s*(?:;([^#]*))?"
)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file; comments, options and unpinned lines are
    ignored. A package pinned per environment marker keeps every pin with its marker:
    `2.4.6 (python_version >= "3.11"), 2.2.6 (python_version < "3.11")`."""
    pins: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            name, version, marker = match.groups()
            marker = (marker or "").strip()
            pins.setdefault(_normalise(name), []).append(
                f"{version} ({marker})" if marker else version
            )
    return {name: ", ".join(versions) for name, versions in sorted(pins.items())}


def pip_list_argv(image: str, *, python: str = "/opt/tf2aif/venv/bin/python") -> list[str]:
    return [
        "docker", "run", "--rm", "--network", "none", "--entrypoint", python, image,
        "-m", "pip", "list", "--format", "json", "--disable-pip-version-check",
    ]  # fmt: skip


def probe_tools(
    image: str,
    *,
    python: str = "/opt/tf2aif/venv/bin/python",
    run: Callable[..., Any] = subprocess.run,
) -> ToolSet:
    """Installed package versions in a built base image (`pip list` inside it)."""
    done = _run(run, pip_list_argv(image, python=python))
    if done.returncode != 0:
        raise LockError(f"pip list in {image} failed: {_last_line(done.stderr)}")
    packages = {_normalise(p["name"]): str(p["version"]) for p in json.loads(done.stdout)}
    return ToolSet(source=f"pip list in {image}", packages=dict(sorted(packages.items())))


# --- image resolution --------------------------------------------------------------------------


def _strip_digest(ref: str) -> str:
    return ref.split("@", 1)[0]


def _digest_of(ref: str) -> str | None:
    return ref.split("@", 1)[1] if "@" in ref else None


def _platforms(manifest: Mapping[str, Any]) -> tuple[str, ...]:
    found = set()
    for entry in manifest.get("manifests") or ():
        platform = entry.get("platform") or {}
        if platform.get("os") in (None, "unknown"):
            continue  # attestation manifests
        text = f"{platform['os']}/{platform['architecture']}"
        if platform.get("variant"):
            text += f"/{platform['variant']}"
        found.add(text)
    return tuple(sorted(found))


def imagetools_argv(ref: str) -> list[str]:
    return ["docker", "buildx", "imagetools", "inspect", "--format", "{{json .Manifest}}", ref]


def resolve_with_buildx(ref: str, *, run: Callable[..., Any] = subprocess.run) -> ResolvedImage:
    """Resolve through buildx (uses the docker login credentials, any registry)."""
    done = _run(run, imagetools_argv(ref))
    if done.returncode != 0:
        raise LockError(_last_line(done.stderr) or f"imagetools inspect exited {done.returncode}")
    manifest = json.loads(done.stdout)
    return ResolvedImage(digest=manifest["digest"], platforms=_platforms(manifest))


_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


def _split_ref(ref: str) -> tuple[str, str, str]:
    """(registry host, repository, tag or digest) with Docker Hub's defaults applied."""
    name, digest = _strip_digest(ref), _digest_of(ref)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = "registry-1.docker.io", name
        if "/" not in path:
            path = f"library/{path}"
    repo, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    return host, repo, digest or tag or "latest"


def _scheme(host: str) -> str:
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return "http" if hostname in ("localhost", "127.0.0.1", "::1") else "https"


def resolve_with_registry(ref: str, *, client: Any = None) -> ResolvedImage:
    """Resolve with the registry HTTP API (anonymous; loopback registries over plain HTTP)."""
    try:
        import httpx
    except ImportError:
        raise LockError("--resolver registry needs httpx (pip install httpx)") from None

    host, repo, reference = _split_ref(ref)
    url = f"{_scheme(host)}://{host}/v2/{repo}/manifests/{reference}"
    own = client is None
    client = client or httpx.Client(timeout=20.0)
    try:
        response = client.get(url, headers={"Accept": _ACCEPT})
    except httpx.HTTPError as exc:
        raise LockError(f"{url}: {exc}") from None
    finally:
        if own:
            client.close()
    if response.status_code != 200:
        raise LockError(f"{url}: HTTP {response.status_code}")
    digest = f"sha256:{hashlib.sha256(response.content).hexdigest()}"
    header = response.headers.get("Docker-Content-Digest")
    if header and header != digest:
        raise LockError(f"{url}: registry says {header} but the manifest hashes to {digest}")
    return ResolvedImage(digest=digest, platforms=_platforms(response.json()))


def _run(run: Callable[..., Any], argv: list[str]) -> Any:
    try:
        return run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ToolMissingError(
            f"{argv[0]} is not installed (needed for: {' '.join(argv[:4])})"
        ) from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- building and checking the lock ------------------------------------------------------------


def _resolve_all(
    refs: Iterable[str], vendor_map: Mapping[str, str], resolve: Resolver
) -> dict[str, LockedImage]:
    images, failures = {}, []
    for ref in sorted(set(refs)):
        source = vendor_map.get(ref, ref)
        try:
            resolved = (
                ResolvedImage(digest=_digest_of(source))  # already pinned: nothing to ask
                if _digest_of(source)
                else resolve(source)
            )
        except LockError as exc:
            failures.append(f"  {source}: {exc}")
            continue
        images[ref] = LockedImage(
            source=source, digest=resolved.digest, platforms=resolved.platforms
        )
        log.debug("%s -> %s", source, resolved.digest)
    if failures:
        raise LockError(
            f"cannot resolve {len(failures)} image reference(s) to a digest:\n"
            + "\n".join(failures)
            + "\npoint unreachable vendor images at a mirror with --vendor-map FILE"
        )
    return images


def build_lock(inputs: LockInputs, resolve: Resolver) -> Lock:
    return Lock(
        manifest=inputs.manifest,
        files=digest_files(inputs.files),
        images=_resolve_all(inputs.images, inputs.vendor_map, resolve),
        tools=dict(inputs.tools),
    )


def diff_locks(old: Lock, new: Lock) -> tuple[str, ...]:
    """One line per difference, naming what changed; empty when the locks agree."""
    lines = [*_diff_files(old.files, new.files), *_diff_images(old.images, new.images)]
    for name in sorted(set(old.tools) | set(new.tools)):
        before = old.tools.get(name, ToolSet(source="", packages={})).packages
        after = new.tools.get(name, ToolSet(source="", packages={})).packages
        for package in sorted(set(before) | set(after)):
            if before.get(package) != after.get(package):
                was, now = before.get(package, "absent"), after.get(package, "absent")
                lines.append(f"tool     {name}: {package} {was} -> {now}")
    return tuple(lines)


def _diff_files(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    lines = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            lines.append(f"removed  {name}")
        elif name not in old:
            lines.append(f"added    {name}")
        elif old[name] != new[name]:
            lines.append(f"changed  {name}")
    return lines


def _diff_images(old: Mapping[str, LockedImage], new: Mapping[str, LockedImage]) -> list[str]:
    lines = []
    for ref in sorted(set(old) | set(new)):
        if ref not in new:
            lines.append(f"image    {ref} is no longer used")
        elif ref not in old:
            lines.append(f"image    {ref} is not locked")
        elif old[ref].source != new[ref].source:
            lines.append(
                f"image    {ref} now comes from {new[ref].source} (locked {old[ref].source})"
            )
        elif old[ref].digest != new[ref].digest:
            lines.append(
                f"image    {ref} now resolves to {new[ref].digest} (locked {old[ref].digest})"
            )
    return lines


def check_lock(old: Lock, inputs: LockInputs, resolve: Resolver | None) -> tuple[str, ...]:
    """Differences between the lock and the inputs now; `resolve=None` skips the registry and
    only checks that every image is locked with the same source."""
    if resolve is None:
        images = {}
        for ref in inputs.images:
            source = inputs.vendor_map.get(ref, ref)
            locked = old.images.get(ref)
            same = locked is not None and locked.source == source
            images[ref] = locked if same else LockedImage(source=source, digest="unresolved")
        now = Lock(
            manifest=inputs.manifest,
            files=digest_files(inputs.files),
            images=images,
            tools=dict(inputs.tools),
        )
        return diff_locks(old, now)
    return diff_locks(old, build_lock(inputs, resolve))


# --- inputs of a manifest (from the plan) ------------------------------------------------------

# Never inputs, even when the model or plug-in context is the manifest's own folder.
_NOT_INPUTS = re.compile(r"(^|/)(\.tf2aif/|\.git/)|^tf2aif\.lock$|^tf2aif-record[^/]*\.json$")


def _stored_name(path: Path, root: Path, data: tuple[str, Path] | None = None) -> str:
    """Relative to the manifest's folder; shipped data outside it as `tf2aif:<folder>/...`."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        if data is None:
            return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()
        name, base = data
        return f"tf2aif:{name}/{path.resolve().relative_to(base.resolve()).as_posix()}"


def _add_tree(
    files: dict[str, Path], path: Path, root: Path, data: tuple[str, Path] | None = None
) -> None:
    for item in files_under(path) if path.exists() else ():
        name = _stored_name(item, root, data)
        if not _NOT_INPUTS.search(name):
            files[name] = item


def plan_inputs(
    manifest: Path, *, env: Mapping[str, str], vendor_map: Mapping[str, str] | None = None
) -> LockInputs:
    """Inputs of the build `tf2aif bake` would run for `manifest`: the manifest, the model and
    plug-in build contexts, the recipes and base image folders the plan uses (and
    base_images/common, which every base build copies install.sh from), the vendor images
    those name (as the recipes name them: the vendor map is applied when resolving) and the
    base images' requirement pins."""
    from tf2aif.bases.standins import COMMON_FOLDER
    from tf2aif.pipeline.manifest import load_manifest
    from tf2aif.pipeline.plan import EMPTY_CONTEXT, make_plan
    from tf2aif.pipeline.recipes import load_recipes, recipe_dirs
    from tf2aif.pipeline.resolve import resolve
    from tf2aif.resources import data_dir

    parsed, _ = load_manifest(manifest)
    plan = make_plan(resolve(parsed, load_recipes(env=env)), env=env)
    root = parsed.root
    files = {_stored_name(parsed.file, root): parsed.file}
    contexts = dict(plan.converts[0].contexts) if plan.converts else {}
    contexts.setdefault("model", parsed.model.path)
    for context in contexts.values():
        if context != EMPTY_CONTEXT:
            _add_tree(files, root / context, root)
    shipped_recipes = data_dir("recipes").resolve()
    for folder in recipe_dirs(env):
        data = ("recipes", folder) if folder.resolve() == shipped_recipes else None
        _add_tree(files, folder / "platforms.yaml", root, data)
        for recipe in sorted({v.recipe for v in plan.variants}):
            _add_tree(files, folder / recipe, root, data)
    base_dir = data_dir("base_images")
    tools = {}
    if plan.bases:
        _add_tree(files, base_dir / COMMON_FOLDER, root, ("base_images", base_dir))
    for folder in sorted({b.folder for b in plan.bases}):
        _add_tree(files, base_dir / folder, root, ("base_images", base_dir))
        for requirements in sorted((base_dir / folder).glob("requirements*.txt")):
            name = (
                folder
                if requirements.name == "requirements.txt"
                else f"{folder}/{requirements.name}"
            )
            tools[name] = ToolSet(
                source=_stored_name(requirements, root, ("base_images", base_dir)),
                packages=requirement_pins(requirements),
            )
    return LockInputs(
        manifest=_stored_name(parsed.file, root),
        files=dict(sorted(files.items())),
        images=tuple(sorted({b.vendor for b in plan.bases})),
        vendor_map=dict(vendor_map or {}),
        tools=tools,
    )


# --- reading and writing -----------------------------------------------------------------------


def dump_lock(lock: Lock) -> str:
    return _HEADER + yaml.safe_dump(
        lock.to_dict(), sort_keys=False, default_flow_style=False, width=200
    )


def write_lock(path: Path, lock: Lock) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dump_lock(lock), encoding="utf-8")
    os.replace(tmp, path)


def write_vendor_map(path: Path, lock: Lock) -> None:
    text = yaml.safe_dump(lock.vendor_map(), sort_keys=True, default_flow_style=False, width=300)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# Vendor images pinned to the digests in {LOCK_FILE}\n{text}", encoding="utf-8"
    )


def load_lock(path: Path) -> Lock:
    """The lock at `path`, checked against schema/lock.schema.json (a ManifestError says where not)."""
    if "does not exist" in file_problem(path):
        raise LockError(f"{path}: no lock file; run `tf2aif lock` and commit {path.name}")
    data = load_checked(path, "lock.schema.json", what="lock file").data
    if data.get("format", LOCK_FORMAT) > LOCK_FORMAT:
        raise LockError(f"{path}: lock format {data['format']} is newer than this tf2aif reads")
    return Lock.from_dict(data)

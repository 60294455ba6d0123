"""The edge of the lock: image references resolved to digests (through `docker buildx
imagetools`, or the registry HTTP API) and the tool versions installed in a built base image."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

from tf2aif.errors import LockError, ToolMissingError
from tf2aif.lock.inputs import normalise_name
from tf2aif.lock.lockfile import ResolvedImage, ToolSet, digest_of, strip_digest
from tf2aif.pipeline.imagetools import inspect_manifest_argv

__all__ = [
    "pip_list_argv",
    "probe_tools",
    "resolve_with_buildx",
    "resolve_with_registry",
]


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
    packages = {normalise_name(p["name"]): str(p["version"]) for p in json.loads(done.stdout)}
    return ToolSet(source=f"pip list in {image}", packages=dict(sorted(packages.items())))


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


def resolve_with_buildx(ref: str, *, run: Callable[..., Any] = subprocess.run) -> ResolvedImage:
    """Resolve through buildx (uses the docker login credentials, any registry)."""
    done = _run(run, inspect_manifest_argv(ref))
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
    name, digest = strip_digest(ref), digest_of(ref)
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

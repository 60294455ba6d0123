"""Local stand-ins for vendor images (`tf2aif bases --local`).

Where vendor registries cannot be reached (air-gapped CI, this kind of sandbox), a *stand-in*
takes their place: a Debian minbase root file system with python3 made by mmdebstrap for each
architecture, pushed to a registry as one multi-arch image, plus a vendor map (vendor ref -> stand-in ref) that `tf2aif bake --vendor-map` reads.
The base Dockerfiles then install on the stand-in what the vendor image would have provided.

Everything here is pure (argv lists, file text, plans) except the `run_*` functions at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tf2aif.bases.folders import DEFAULT_SBOM_GENERATOR, base_digest, common_context_arg
from tf2aif.errors import BuildError, PlanError, ToolMissingError
from tf2aif.pipeline.imagetools import raw_digest

__all__ = [
    "DEMO_VENDOR_REFS",
    "STAND_IN_PACKAGES",
    "ScannerPlan",
    "StandInPlan",
    "StepTiming",
    "buildx_scanner_argv",
    "buildx_stand_in_argv",
    "debian_mirrors",
    "mmdebstrap_argv",
    "plan_sbom_scanner",
    "plan_stand_ins",
    "render_vendor_map",
    "run_sbom_scanner",
    "run_stand_ins",
    "stand_in_dockerfile",
    "vendor_map",
]

log = logging.getLogger(__name__)

STAND_IN_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
# The vendor images the demo manifest (tf2aif.yaml) builds on: convert-tf and serve-tf,
# serve-tflite (amd64 + arm64) and serve-openvino (cpu).
DEMO_VENDOR_REFS = (
    "tensorflow/tensorflow:2.21.0",
    "python:3.11-slim-bookworm",
    "openvino/ubuntu22_runtime:2025.3.0",
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# Fixed mtimes make the root file system tarballs reproducible for one package set.
SOURCE_DATE_EPOCH = "1700000000"


@dataclass(frozen=True, kw_only=True)
class StandInPlan:
    """What `tf2aif bases --local` builds, and where it caches it."""

    cache_dir: Path  # root file system tarballs live here between runs
    image: str  # multi-arch stand-in, e.g. 127.0.0.1:5000/stand-in/python:3.11-bookworm
    arches: tuple[str, ...]  # Debian architecture names: amd64, arm64
    suite: str
    packages: tuple[str, ...]
    mirror: str
    security_mirror: str
    vendor_refs: tuple[str, ...]
    map_file: Path

    @property
    def key(self) -> str:
        """Names the package set: a new set never reuses an old cached tarball."""
        text = json.dumps([self.suite, "minbase", sorted(self.packages)])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def rootfs(self, arch: str) -> Path:
        return self.cache_dir / f"rootfs-{self.suite}-{self.key}-{arch}.tar"

    @property
    def context_dir(self) -> Path:
        return self.cache_dir / f"context-{self.key}"

    @property
    def stamp_file(self) -> Path:
        return self.cache_dir / f"pushed-{self.key}.json"

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(f"linux/{arch}" for arch in self.arches)


def debian_mirrors(sources_text: str) -> tuple[str, str]:
    """(main mirror, security mirror) from a deb822 `debian.sources` file, with defaults."""
    uris = re.findall(r"^URIs:\s*(\S+)", sources_text, flags=re.MULTILINE)
    security = next((u for u in uris if "security" in u), DEFAULT_SECURITY_MIRROR)
    main = next((u for u in uris if "security" not in u), DEFAULT_MIRROR)
    return main.rstrip("/"), security.rstrip("/")


def plan_stand_ins(
    *,
    env: Mapping[str, str],
    registry: str,
    arches: Sequence[str],
    vendor_refs: Sequence[str],
    map_file: Path,
    sources_text: str = "",
) -> StandInPlan:
    """Resolve the stand-in build from arguments and the environment (TF2AIF_STATE)."""
    state = Path(env.get("TF2AIF_STATE", "/root/dv"))
    mirror, security = debian_mirrors(sources_text)
    unknown = sorted(set(arches) - {"amd64", "arm64"})
    if unknown:
        raise PlanError(f"unsupported stand-in architecture(s) {unknown}: use amd64, arm64")
    return StandInPlan(
        cache_dir=state / "stand-ins",
        image=f"{registry.rstrip('/')}/stand-in/python:3.11-bookworm",
        arches=tuple(dict.fromkeys(arches)),
        suite="bookworm",
        packages=STAND_IN_PACKAGES,
        mirror=mirror,
        security_mirror=security,
        vendor_refs=tuple(dict.fromkeys(vendor_refs)),
        map_file=map_file,
    )


def mmdebstrap_argv(plan: StandInPlan, arch: str, output: Path) -> list[str]:
    """The root file system of one architecture (foreign ones run under qemu binfmt)."""
    suite = plan.suite
    return [
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        f"--architectures={arch}",
        f"--include={','.join(plan.packages)}",
        suite,
        str(output),
        f"deb {plan.mirror} {suite} main",
        f"deb {plan.mirror} {suite}-updates main",
        f"deb {plan.security_mirror} {suite}-security main",
    ]


def stand_in_dockerfile(plan: StandInPlan) -> str:
    """One Dockerfile for every platform: TARGETARCH picks the root file system tarball."""
    return "\n".join(
        [
            "FROM scratch",
            "ARG TARGETARCH",
            f"ADD rootfs-{plan.suite}-{plan.key}-${{TARGETARCH}}.tar /",
            "ENV LANG=C.UTF-8",
            f'LABEL io.tf2aif.stand-in="{plan.suite} minbase + {" ".join(plan.packages)}"',
            'CMD ["python3"]',
            "",
        ]
    )


def buildx_stand_in_argv(plan: StandInPlan) -> list[str]:
    """Build the multi-arch stand-in and push it (FROM in later builds pulls it from there)."""
    return [
        "docker",
        "buildx",
        "build",
        "--platform",
        ",".join(plan.platforms),
        "--provenance=false",
        "--output",
        f"type=image,name={plan.image},push=true",
        str(plan.context_dir),
    ]


@dataclass(frozen=True, kw_only=True)
class ScannerPlan:
    """The SBOM generator image built from base_images/sbom-scanner on the stand-in."""

    folder: Path  # base_images/sbom-scanner (the build context; base_images/common is named)
    vendor_image: str  # the stand-in it is built on
    image: str  # e.g. 127.0.0.1:5000/tf2aif/sbom-scanner:<content key>
    platforms: tuple[str, ...]
    replaces: str = DEFAULT_SBOM_GENERATOR  # vendor map key: the generator it stands in for


def plan_sbom_scanner(stand_ins: StandInPlan, *, registry: str, folder: Path) -> ScannerPlan:
    """Tagged by content (its folder and base_images/common, stand-in key, platforms): a changed
    scanner or install.sh gets a new tag, an unchanged one is found in the registry and not
    rebuilt."""
    digest = hashlib.sha256(base_digest(folder).encode())
    digest.update(json.dumps([stand_ins.image, stand_ins.key, stand_ins.platforms]).encode())
    return ScannerPlan(
        folder=folder,
        vendor_image=stand_ins.image,
        image=f"{registry.rstrip('/')}/tf2aif/sbom-scanner:{digest.hexdigest()[:12]}",
        platforms=stand_ins.platforms,
    )


def buildx_scanner_argv(plan: ScannerPlan, ca_file: str | None = None) -> list[str]:
    """Build the scanner for every stand-in platform and push it: BuildKit pulls an SBOM
    generator by reference and runs it on the build platform, whatever the target platform."""
    argv = ["docker", "buildx", "build", "--platform", ",".join(plan.platforms)]
    argv += ["--provenance=false", "--build-arg", f"VENDOR_IMAGE={plan.vendor_image}"]
    if ca_file:
        argv += ["--secret", f"id=ca,src={ca_file}"]
    argv += common_context_arg(plan.folder)
    argv += ["--output", f"type=image,name={plan.image},push=true", str(plan.folder)]
    return argv


def vendor_map(plan: StandInPlan, scanner: ScannerPlan | None = None) -> dict[str, str]:
    mapping = {ref: plan.image for ref in plan.vendor_refs}
    if scanner is not None:
        mapping[scanner.replaces] = scanner.image
    return mapping


def render_vendor_map(mapping: Mapping[str, str]) -> str:
    """YAML (every value is a JSON string, which YAML reads as-is), sorted, one ref a line."""
    lines = [
        "# vendor image -> replacement, read by `tf2aif bake --vendor-map` / TF2AIF_VENDOR_MAP"
    ]
    lines += [f"{json.dumps(ref)}: {json.dumps(mapping[ref])}" for ref in sorted(mapping)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- edge: subprocesses, files


@dataclass(frozen=True, kw_only=True)
class StepTiming:
    name: str
    seconds: float
    cached: bool = False


Runner = Callable[..., subprocess.CompletedProcess]


def _require_tools(names: Iterable[str]) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        raise ToolMissingError(
            f"{', '.join(missing)} not found; scripts/docker-up.sh installs the engine, "
            "buildx, mmdebstrap, arch-test and qemu-user-static"
        )


def _make_rootfs(plan: StandInPlan, env: Mapping[str, str]) -> list[StepTiming]:
    """mmdebstrap every missing architecture at once (arm64 runs under qemu and is slowest)."""
    missing = [arch for arch in plan.arches if not plan.rootfs(arch).is_file()]
    done = {a: StepTiming(name=f"rootfs {a}", seconds=0.0, cached=True) for a in plan.arches}
    if missing:
        _require_tools(["mmdebstrap", "arch-test"])
        plan.cache_dir.mkdir(parents=True, exist_ok=True)
        run_env = {**env, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
        started = time.monotonic()
        running = {arch: _start_mmdebstrap(plan, arch, run_env) for arch in missing}
        while running:
            for arch, proc in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[arch]
                _finish_rootfs(plan, arch, proc.returncode)
                done[arch] = StepTiming(name=f"rootfs {arch}", seconds=time.monotonic() - started)
            time.sleep(0.2)
    return [done[arch] for arch in plan.arches]


def _start_mmdebstrap(plan: StandInPlan, arch: str, env: Mapping[str, str]) -> subprocess.Popen:
    partial = plan.rootfs(arch).with_suffix(".partial.tar")
    log.info("mmdebstrap %s -> %s", arch, plan.rootfs(arch))
    with open(plan.rootfs(arch).with_suffix(".log"), "wb") as log_file:
        return subprocess.Popen(
            mmdebstrap_argv(plan, arch, partial), env=dict(env), stdout=log_file, stderr=log_file
        )


def _finish_rootfs(plan: StandInPlan, arch: str, returncode: int) -> None:
    """Only a complete tarball gets the cached name, so an interrupted run is redone."""
    partial = plan.rootfs(arch).with_suffix(".partial.tar")
    if returncode != 0:
        partial.unlink(missing_ok=True)
        log_path = plan.rootfs(arch).with_suffix(".log")
        tail = "\n".join(log_path.read_text(errors="replace").strip().splitlines()[-5:])
        raise BuildError(f"mmdebstrap {arch} failed (see {log_path}):\n{tail}", failed=[arch])
    partial.rename(plan.rootfs(arch))


def _stamp(plan: StandInPlan) -> str:
    files = [plan.rootfs(arch) for arch in plan.arches]
    sizes = [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in files]
    return json.dumps({"image": plan.image, "rootfs": sizes}, sort_keys=True)


def _pushed(plan: StandInPlan, run: Runner) -> bool:
    """True when this exact stand-in was pushed before and the registry still serves it."""
    if not plan.stamp_file.is_file() or plan.stamp_file.read_text() != _stamp(plan):
        return False
    return raw_digest(plan.image, run=run) is not None


def _push_image(plan: StandInPlan, run: Runner) -> StepTiming:
    if _pushed(plan, run):
        return StepTiming(name="build+push", seconds=0.0, cached=True)
    plan.context_dir.mkdir(parents=True, exist_ok=True)
    for old in plan.context_dir.glob("*.tar"):
        old.unlink()
    for arch in plan.arches:  # hard links: no copy of ~250 MB per arch
        os.link(plan.rootfs(arch), plan.context_dir / plan.rootfs(arch).name)
    (plan.context_dir / "Dockerfile").write_text(stand_in_dockerfile(plan))
    started = time.monotonic()
    result = run(buildx_stand_in_argv(plan), capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"building the stand-in {plan.image} failed:\n{result.stderr[-2000:]}")
    plan.stamp_file.write_text(_stamp(plan))
    return StepTiming(name="build+push", seconds=time.monotonic() - started)


def run_sbom_scanner(
    plan: ScannerPlan, *, ca_file: str | None = None, run: Runner = subprocess.run
) -> StepTiming:
    """Build + push the scanner unless the registry already serves its content tag."""
    if raw_digest(plan.image, run=run) is not None:
        return StepTiming(name="sbom-scanner", seconds=0.0, cached=True)
    started = time.monotonic()
    result = run(buildx_scanner_argv(plan, ca_file), capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"building the SBOM scanner {plan.image} failed:\n{result.stderr[-2000:]}")
    return StepTiming(name="sbom-scanner", seconds=time.monotonic() - started)


def write_vendor_map(plan: StandInPlan, scanner: ScannerPlan | None = None) -> Path:
    plan.map_file.parent.mkdir(parents=True, exist_ok=True)
    plan.map_file.write_text(render_vendor_map(vendor_map(plan, scanner)))
    return plan.map_file


def run_stand_ins(
    plan: StandInPlan,
    *,
    env: Mapping[str, str],
    scanner: ScannerPlan | None = None,
    ca_file: str | None = None,
    run: Runner = subprocess.run,
) -> tuple[StepTiming, ...]:
    """Make (or reuse) the root file systems, build + push the stand-in (and the SBOM scanner
    on it), write the vendor map."""
    _require_tools(["docker"])
    timings = _make_rootfs(plan, env)
    timings.append(_push_image(plan, run))
    if scanner is not None:
        timings.append(run_sbom_scanner(scanner, ca_file=ca_file, run=run))
    write_vendor_map(plan, scanner)
    return tuple(timings)

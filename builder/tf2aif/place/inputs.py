"""The placement inputs as frozen values: cluster nodes, models (profiles + build record), apps.

Units inside: seconds, requests/second, MiB. Files speak milliseconds (`*_ms`).

A profile file is either placement's own (schema/profile.schema.json, figures in ms) or what
`tf2aif bench --profile` measured (schema/bench-profile.schema.json, `schema:
tf2aif-bench-profile`, figures in s). A bench profile becomes a placement Profile so:

- latency L of the isolated requests: mean E[L], variance Var(L) = E[L^2] - E[L]^2;
- total service T: on cpu/arm variants the server's own CPU seconds per request
  (`service_time.server_cpu_s`) when the bench measured it and it is below E[L], since the
  client's and the loopback's share of L does not occupy the node; else E[L] (accelerators:
  their device time is not CPU time; URL targets: the server's CPU is not ours to read; a
  request spread over several cores: its CPU exceeds its latency);
- processing P = `service_time.processing_s` (pre/post-processing from the server's stage
  histogram) when measured and below T, else 0; E[P^2] = P^2 (only its mean is measured);
- service S = T - P, E[S^2] = S^2 + Var(L): the latency's spread is kept whole, as the
  server's CPU is measured as a total, not per request. On cpu/arm, where placement adds P back
  to S, the combined second moment is T^2 + Var(L): with T = E[L] exactly the measured E[L^2];
- max_rate = `sustainable_rate_rps`, memory_mb = `memory.rss_bytes` / 2^20;
- cold starts (cpu/arm, when T is the server's CPU): `service_time.cold` extra_s and tau_s.

A bench profile without a sustainable rate or without a resident memory figure is refused with
the field that lacks it: neither can be guessed safely, and both come back from a re-run (on a
quieter machine; on an artifact or image rather than a URL).

One module, over 400 lines on purpose: the frozen values and the loaders that build them
belong together, and apps files reference profile and record files, so load_apps, load_profiles
and load_record_images call one another through the same Profile and ModelSpec values.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tf2aif.errors import ManifestError, Tf2aifError, did_you_mean
from tf2aif.pipeline.record import image_reference, read_record
from tf2aif.pipeline.yamlfile import file_problem

from .loading import Document, load_document

__all__ = [
    "Accelerator",
    "App",
    "ModelSpec",
    "Node",
    "Profile",
    "bench_profile",
    "load_apps",
    "load_cluster",
    "load_profiles",
    "load_record_images",
]

log = logging.getLogger(__name__)

DEFAULT_CAP = 0.8
BENCH_PROFILE = "tf2aif-bench-profile"  # the `schema` of a `tf2aif bench --profile` document
VARIANT = re.compile(r"[a-z0-9]+/[a-z0-9-]+/(fp32|fp16|int8)")  # as in profile.schema.json
# Which device a platform's model runs on, and how that device is shared by default.
ACCELERATED = {"gpu": "time", "agx": "time", "alveo": "exclusive"}


@dataclass(frozen=True, kw_only=True)
class Accelerator:
    name: str = ""
    sharing: str  # "time" | "exclusive"
    units: int = 1
    memory_mb: float | None = None


@dataclass(frozen=True, kw_only=True)
class Node:
    name: str
    platform: str
    memory_mb: float
    cores: int = 1
    accelerator: Accelerator | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    cap: float = DEFAULT_CAP


@dataclass(frozen=True, kw_only=True)
class Profile:
    variant: str
    service: float  # E[S], s
    service_m2: float  # E[S^2], s^2
    memory_mb: float
    processing: float = 0.0  # CPU time per request for pre/post-processing, s
    processing_m2: float = 0.0
    max_rate: float | None = None
    accelerator_memory_mb: float = 0.0
    switch: float = 0.0
    cold_extra: float = 0.0  # extra CPU s of a request after a long idle spell (time-shared)
    cold_tau: float = 0.0  # s; an idle spell I costs cold_extra (1 - e^(-I / cold_tau))

    @property
    def platform(self) -> str:
        return self.variant.split("/", 1)[0]

    @property
    def precision(self) -> str:
        return self.variant.rsplit("/", 1)[1]


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A model as placement sees it: the variants it may run, their profiles and images."""

    name: str
    profiles: Mapping[str, Profile]  # eligible variants only
    images: Mapping[str, str] = field(default_factory=dict)  # variant -> image reference
    excluded: Mapping[str, str] = field(default_factory=dict)  # variant -> why not eligible


@dataclass(frozen=True, kw_only=True)
class App:
    name: str
    model: str
    rate: float
    slo: float  # mean latency target, s
    p99_slo: float | None = None
    variants: tuple[str, ...] = ()  # fnmatch patterns; empty = any
    node_selector: Mapping[str, str] = field(default_factory=dict)
    headroom: float = 0.0  # the planner aims at (1 - headroom) x each target

    @property
    def plan_slo(self) -> float:
        return self.slo * (1.0 - self.headroom)

    @property
    def plan_p99(self) -> float:
        return math.inf if self.p99_slo is None else self.p99_slo * (1.0 - self.headroom)

    def allows(self, variant: str) -> bool:
        return not self.variants or any(fnmatch.fnmatchcase(variant, p) for p in self.variants)


def load_cluster(path: str | Path) -> tuple[Node, ...]:
    document = load_document(path, "cluster.schema.json")
    cap = document.data.get("utilisation_cap", DEFAULT_CAP)
    nodes: list[Node] = []
    for raw in document.data["nodes"]:
        count = raw.get("count")
        names = (
            [raw["name"]] if count is None else [f"{raw['name']}-{i}" for i in range(1, count + 1)]
        )
        nodes.extend(_node(raw, name, cap) for name in names)
    _check_unique(document, [n.name for n in nodes], ("nodes",), "node name")
    return tuple(nodes)


def _node(raw: Mapping[str, Any], name: str, cap: float) -> Node:
    platform = raw["platform"]
    accelerator = None
    if platform in ACCELERATED:
        spec = raw.get("accelerator", {})
        accelerator = Accelerator(
            name=spec.get("name", ""),
            sharing=spec.get("sharing", ACCELERATED[platform]),
            units=spec.get("units", 1),
            memory_mb=spec.get("memory_mb"),
        )
    return Node(
        name=name,
        platform=platform,
        memory_mb=float(raw["memory_mb"]),
        cores=raw.get("cores", 1),
        accelerator=accelerator,
        labels=dict(raw.get("labels", {})),
        cap=raw.get("utilisation_cap", cap),
    )


def _check_unique(document: Document, names: list[str], path: tuple, what: str) -> None:
    seen: set[str] = set()
    issues = []
    for i, name in enumerate(names):
        if name in seen:
            issues.append(document.issue((*path, i), f"duplicate {what} {name!r}"))
        seen.add(name)
    if issues:
        raise ManifestError(issues, file=document.file)


def load_profiles(path: str | Path) -> tuple[str, dict[str, Profile]]:
    """(model name, variant -> Profile) from a profile file: placement's own or a bench profile.

    The model name is "" when a bench profile does not say (a `--health` run).
    """
    document = load_document(path, _profile_schema)
    if document.data.get("schema") == BENCH_PROFILE:
        return _bench_profiles(document)
    profiles = {}
    for raw in document.data["profiles"]:
        service = raw["service_ms"] / 1e3
        processing = raw.get("processing_ms", 0.0) / 1e3
        profiles[raw["variant"]] = Profile(
            variant=raw["variant"],
            service=service,
            service_m2=raw.get("service_m2_ms2", raw["service_ms"] ** 2) / 1e6,
            processing=processing,
            processing_m2=raw.get("processing_m2_ms2", raw.get("processing_ms", 0.0) ** 2) / 1e6,
            max_rate=raw.get("max_rate"),
            memory_mb=float(raw["memory_mb"]),
            accelerator_memory_mb=float(raw.get("accelerator_memory_mb", 0.0)),
            switch=raw.get("switch_ms", 0.0) / 1e3,
            cold_extra=raw.get("cold_extra_ms", 0.0) / 1e3,
            cold_tau=raw.get("cold_tau_ms", 0.0) / 1e3,
        )
    _check_unique(
        document, [p["variant"] for p in document.data["profiles"]], ("profiles",), "variant"
    )
    return document.data["model"], profiles


def _profile_schema(data: Any) -> str:
    bench = isinstance(data, Mapping) and data.get("schema") == BENCH_PROFILE
    return "bench-profile.schema.json" if bench else "profile.schema.json"


def _bench_profiles(document: Document) -> tuple[str, dict[str, Profile]]:
    """A `tf2aif bench --profile` document as placement profiles (see the module docstring)."""
    raws = document.data["profiles"]
    issues = [] if raws else [document.issue(("profiles",), "measures no variant")]
    profiles: dict[str, Profile] = {}
    model, model_at = "", None
    for i, raw in enumerate(raws):
        found = raw.get("model") or ""
        if found and model and found != model:
            issues.append(
                document.issue(
                    ("profiles", i, "model"),
                    f"is for model {found!r}, but profiles[{model_at}] is for {model!r}:"
                    " one profile file holds one model",
                )
            )
        elif found and not model:
            model, model_at = found, i
        profile, problems = bench_profile(raw)
        issues.extend(document.issue(("profiles", i, *where), what) for where, what in problems)
        if profile is not None:
            profiles[profile.variant] = profile
    if issues:
        raise ManifestError(issues, file=document.file)
    _check_unique(document, [p["variant"] for p in raws], ("profiles",), "variant")
    return model, profiles


def bench_profile(raw: Mapping[str, Any]) -> tuple[Profile | None, list[tuple[tuple, str]]]:
    """One variant of a bench profile as a placement Profile, or what it lacks (field, why)."""
    problems: list[tuple[tuple, str]] = []
    variant = raw["variant"]
    if not VARIANT.fullmatch(variant):
        problems.append(
            (
                ("variant",),
                f"expected a variant id <platform>/<runtime>/<precision> such as"
                f" 'cpu/tflite/fp32', got {variant!r} (label --url and --image runs with"
                " `tf2aif bench --variant`)",
            )
        )
    service = raw["service_time"]
    latency, latency_m2 = service.get("mean_s"), service.get("second_moment_s2")
    if not (_positive(latency) and _positive(latency_m2)):
        problems.append(
            (
                ("service_time", "mean_s"),
                "expected the mean of the isolated requests, but none was answered"
                f" ({service.get('requests', 0)} answered, {service.get('errors', 0)} errors)",
            )
        )
    rate = raw.get("sustainable_rate_rps")
    if not _positive(rate):
        problems.append(
            (
                ("sustainable_rate_rps",),
                "expected the highest sustainable rate (placement's max_rate), but no checked"
                " rate was sustainable (see rate_checks); measure again on a quieter machine",
            )
        )
    rss = (raw.get("memory") or {}).get("rss_bytes")
    if not _positive(rss):
        problems.append(
            (
                ("memory", "rss_bytes"),
                "expected the server's resident memory (placement's memory_mb), but none was"
                f" measured ({raw.get('target_kind')} target); bench the --artifact or --image,"
                " which tf2aif starts and can inspect",
            )
        )
    if problems:
        return None, problems
    variance = max(latency_m2 - latency**2, 0.0)
    total = latency
    cpu = service.get("server_cpu_s")
    if variant.split("/", 1)[0] not in ACCELERATED and _positive(cpu) and cpu < latency:
        total = cpu
    processing = service.get("processing_s")
    processing = processing if _positive(processing) and processing < total else 0.0
    mean = total - processing
    cold = (service.get("cold") or {}) if total != latency else {}
    return (
        Profile(
            variant=variant,
            service=mean,
            service_m2=mean**2 + variance,
            processing=processing,
            processing_m2=processing**2,
            max_rate=float(rate),
            memory_mb=rss / 2**20,
            cold_extra=float(cold.get("extra_s", 0.0)),
            cold_tau=float(cold.get("tau_s", 0.0)),
        ),
        [],
    )


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@dataclass(frozen=True, kw_only=True)
class RecordImage:
    """What placement needs from one build-record image entry."""

    variants: tuple[str, ...]
    reference: str  # image@digest when pushed, else the first tag
    ok: bool
    fidelity_passed: bool | None  # None: the record says nothing
    reason: str = ""


def load_record_images(path: str | Path) -> tuple[str, tuple[RecordImage, ...]]:
    """(model name, images) from a build record, read with tf2aif.deploy's record reader."""
    record = read_record(Path(path))
    images = tuple(
        RecordImage(
            variants=tuple(image.variants),
            reference=_reference(image),
            ok=image.status == "success",
            fidelity_passed=_fidelity_passed(image.fidelity),
            reason=image.reason,
        )
        for image in record.images
    )
    return record.name, images


def _reference(image) -> str:
    return image_reference(image) if image.status == "success" else ""


def _fidelity_passed(fidelity: Any) -> bool | None:
    if not isinstance(fidelity, Mapping) or not fidelity:
        return None
    for key in ("passed", "ok"):
        if key in fidelity:
            return bool(fidelity[key])
    status = fidelity.get("status")
    return None if status is None else str(status).lower() in ("pass", "passed", "ok", "success")


def model_spec(
    name: str, profiles: Mapping[str, Profile], images: tuple[RecordImage, ...]
) -> ModelSpec:
    """Keep the variants the build record says were built, and int8 only where fidelity passed."""
    built = {variant: image for image in images for variant in image.variants}
    eligible, excluded, refs = {}, {}, {}
    for variant, profile in sorted(profiles.items()):
        image = built.get(variant)
        if image is None:
            excluded[variant] = "not in the build record"
        elif not image.ok:
            excluded[variant] = f"build did not succeed ({image.reason or 'no reason given'})"
        elif profile.precision == "int8" and image.fidelity_passed is not True:
            excluded[variant] = "int8 without a passed fidelity check in the build record"
        else:
            eligible[variant] = profile
            refs[variant] = image.reference
    for variant, why in excluded.items():
        log.info("%s: %s excluded: %s", name, variant, why)
    return ModelSpec(name=name, profiles=eligible, images=refs, excluded=excluded)


def _referenced(document: Document, path: tuple, load, file: Path):
    """`load(file)` for a file the apps file names; a problem with it also points at that line."""
    problem = file_problem(file)
    if problem:
        raise ManifestError([document.issue(path, problem)], file=document.file)
    try:
        return load(file)
    except ManifestError as exc:
        named = document.issue(path, f"{str(file)!r} is not valid ({len(exc.issues)} below)")
        raise ManifestError([named, *exc.issues], file=document.file) from None
    except Tf2aifError as exc:
        raise ManifestError([document.issue(path, str(exc))], file=document.file) from None


def load_apps(path: str | Path) -> tuple[tuple[App, ...], dict[str, ModelSpec]]:
    """Apps and the models they use (profiles and record paths relative to the apps file)."""
    document = load_document(path, "apps.schema.json")
    base = Path(path).parent
    models, issues = {}, []
    for name, spec in document.data["models"].items():
        profile_model, profiles = _referenced(
            document, ("models", name, "profiles"), load_profiles, base / spec["profiles"]
        )
        record_model, images = _referenced(
            document, ("models", name, "record"), load_record_images, base / spec["record"]
        )
        for what, found in (("profiles", profile_model), ("record", record_model)):
            if found and found != name:
                issues.append(
                    document.issue(("models", name, what), f"is for model {found!r}, not {name!r}")
                )
        models[name] = model_spec(name, profiles, images)
    apps = []
    for i, raw in enumerate(document.data["apps"]):
        if raw["model"] not in models:
            hint = did_you_mean(raw["model"], models)
            issues.append(
                document.issue(("apps", i, "model"), f"unknown model {raw['model']!r}{hint}")
            )
            continue
        apps.append(
            App(
                name=raw["name"],
                model=raw["model"],
                rate=float(raw["rate"]),
                slo=raw["slo_ms"] / 1e3,
                p99_slo=raw["p99_slo_ms"] / 1e3 if "p99_slo_ms" in raw else None,
                variants=tuple(raw.get("variants", ())),
                node_selector=dict(raw.get("node_selector", {})),
            )
        )
    if issues:
        raise ManifestError(issues, file=document.file)
    _check_unique(document, [a["name"] for a in document.data["apps"]], ("apps",), "app name")
    return tuple(apps), models

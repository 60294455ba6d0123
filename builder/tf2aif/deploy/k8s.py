"""Kubernetes objects for tf2aif images: pure functions from frozen values to plain dicts.

Every image serves the Open Inference Protocol on port 8080 (HTTP; health at
/v2/health/{live,ready}, Prometheus metrics at /metrics) and 8081 (gRPC) as uid 10001 and writes
nothing but temp files and an optional TensorRT engine cache, so the root filesystem is read-only
and only /tmp and /var/cache/tf2aif are writable.

One module: Deployment, Service, probes, security context and kustomization are one contract with
the image (ports, user, writable paths), kept side by side so a change to one shows the others.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from tf2aif.deploy.platforms import PlatformProfile, profile_for
from tf2aif.errors import DeployError
from tf2aif.pipeline.record import BuildRecord, ImageRecord, image_reference

__all__ = [
    "CACHE_DIR",
    "GRPC_PORT",
    "PORT",
    "PROBES",
    "Resources",
    "Workload",
    "deployment_for",
    "kustomization_for",
    "manifest_files",
    "service_for",
    "workload_for",
    "check_complete",
    "workload_name",
    "workload_names",
    "workloads_from_record",
]

PORT = 8080
GRPC_PORT = 8081
UID = 10001
CACHE_DIR = "/var/cache/tf2aif"  # TensorRT engine cache: the only thing the server writes
_CACHE_RUNTIMES = frozenset({"tensorrt"})
_NAME_LIMIT = 63  # DNS-1035 label: Service names must fit
KUSTOMIZATION = "kustomization.yaml"
# How readiness is probed: HTTP GET /v2/health/ready, or the gRPC health service (grpc.health.v1,
# service "") on the gRPC port, natively (Kubernetes 1.27+). Both turn ready with the model.
PROBES = ("http", "grpc")


@dataclass(frozen=True, kw_only=True)
class Resources:
    cpu_request: str = "500m"
    memory_request: str = "512Mi"
    cpu_limit: str | None = None  # unset: no CPU throttling, the usual choice for latency
    memory_limit: str = "2Gi"
    devices: int = 1  # accelerator count per replica on platforms that have one


@dataclass(frozen=True, kw_only=True)
class Workload:
    """One variant of one image, deployed as a Deployment + Service of the same name."""

    name: str
    model: str  # model name of the record (the app label)
    variant: str  # "<platform>/<runtime>/<precision>"
    image: str  # full reference, by digest when known
    profile: PlatformProfile
    replicas: int = 1
    namespace: str | None = None
    resources: Resources = field(default_factory=Resources)
    node: str | None = None  # pin to one node (kubernetes.io/hostname), e.g. from placement
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    probes: str = "http"  # one of PROBES

    @property
    def platform(self) -> str:
        return self.variant.split("/")[0]

    @property
    def runtime(self) -> str:
        return self.variant.split("/")[1]

    @property
    def precision(self) -> str:
        return self.variant.split("/")[2]


def workload_name(model: str, variant: str) -> str:
    """DNS-1035 name `<model>-<platform>-<runtime>-<precision>` (lowercase, at most 63 chars)."""
    text = re.sub(r"[^a-z0-9-]+", "-", f"{model}-{variant.replace('/', '-')}".lower())
    text = re.sub(r"-{2,}", "-", text).strip("-")
    if not text or not text[0].isalpha():
        text = f"m-{text}"
    return text[:_NAME_LIMIT].rstrip("-")


def workload_names(model: str, variants: Iterable[str]) -> dict[str, str]:
    """variant -> a distinct DNS-1035 name: `workload_name` where no other variant shares it,
    else that name cut to make room for `-<digest of the variant>` (unique by construction:
    a clash of digests takes the next digest)."""
    wanted = {variant: workload_name(model, variant) for variant in variants}
    shared: dict[str, int] = {}
    for name in wanted.values():
        shared[name] = shared.get(name, 0) + 1
    names = {v: n for v, n in wanted.items() if shared[n] == 1}
    taken = set(names.values())
    for variant, name in sorted(wanted.items()):
        if variant in names:
            continue
        attempt = 0
        while True:
            digest = hashlib.sha256(f"{variant}\0{attempt}".encode()).hexdigest()[:8]
            candidate = f"{name[: _NAME_LIMIT - 9].rstrip('-')}-{digest}"
            if candidate not in taken:
                break
            attempt += 1
        names[variant] = candidate
        taken.add(candidate)
    return names


def workload_for(
    model: str,
    image: ImageRecord,
    variant: str,
    *,
    node: str | None = None,
    fpga_resource: str | None = None,
    **settings: Any,
) -> Workload:
    """The workload serving `variant` from one record image; `settings` are further Workload
    fields (replicas, namespace, resources, extra_labels, name)."""
    _check_variant(variant, image.target)
    if variant not in image.variants:
        raise DeployError(f"record image {image.target!r} does not serve {variant!r}")
    profile = profile_for(
        variant.split("/")[0], image_platforms=image.platforms, fpga_resource=fpga_resource
    )
    reference = image_reference(image)
    if not reference:
        raise DeployError(f"record image {image.target!r} has neither a digest nor a tag")
    settings.setdefault("name", workload_name(model, variant))
    return Workload(
        model=model,
        variant=variant,
        image=reference,
        profile=profile,
        node=node,
        **settings,
    )


def workloads_from_record(
    record: BuildRecord,
    *,
    replicas: int = 1,
    namespace: str | None = None,
    resources: Resources | None = None,
    only: Iterable[str] = (),
    fpga_resource: str | None = None,
    probes: str = "http",
) -> tuple[tuple[Workload, ...], tuple[str, ...]]:
    """(workloads, skipped) for every variant of every successful image, sorted by name.

    `only` holds fnmatch patterns over variant ids (`cpu/*`, `*/tflite/*`); `skipped` names each
    variant left out and why, so the caller can tell the user.
    """
    patterns = tuple(only)
    chosen: list[tuple[ImageRecord, str]] = []
    skipped: list[str] = []
    listed: dict[str, str] = {}
    for image in record.images:
        for variant in image.variants:
            _check_variant(variant, image.target)
            if variant in listed:
                raise DeployError(
                    f"record images {listed[variant]!r} and {image.target!r} both list variant"
                    f" {variant!r}: a record holds each variant once"
                )
            listed[variant] = image.target
            if patterns and not any(fnmatchcase(variant, p) for p in patterns):
                continue
            if image.status != "success":
                skipped.append(f"{variant}: image {image.target} has status {image.status}")
                continue
            chosen.append((image, variant))
    # names over every variant of the record, so a name does not depend on --only
    names = workload_names(record.name, listed)
    workloads = [
        workload_for(
            record.name,
            image,
            variant,
            fpga_resource=fpga_resource,
            replicas=replicas,
            namespace=namespace,
            resources=resources or Resources(),
            name=names[variant],
            probes=probes,
        )
        for image, variant in chosen
    ]
    return tuple(sorted(workloads, key=lambda w: w.name)), tuple(skipped)


def _check_variant(variant: str, target: str) -> None:
    if len(variant.split("/")) != 3 or not all(variant.split("/")):
        raise DeployError(
            f"record image {target!r}: variant {variant!r} is not <platform>/<runtime>/<precision>"
        )


def _labels(workload: Workload) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": workload.model,
        "app.kubernetes.io/instance": workload.name,
        "app.kubernetes.io/component": "inference-server",
        "app.kubernetes.io/managed-by": "tf2aif",
        "tf2aif.io/platform": workload.platform,
        "tf2aif.io/runtime": workload.runtime,
        "tf2aif.io/precision": workload.precision,
        **workload.extra_labels,
    }


def _metadata(workload: Workload) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": workload.name}
    if workload.namespace:
        meta["namespace"] = workload.namespace
    meta["labels"] = _labels(workload)
    return meta


def _selector(workload: Workload) -> dict[str, str]:
    # Only the instance label: a Deployment selector is immutable, labels may grow.
    return {"app.kubernetes.io/instance": workload.name}


def _resources(workload: Workload) -> dict[str, Any]:
    res = workload.resources
    requests: dict[str, Any] = {"cpu": res.cpu_request, "memory": res.memory_request}
    limits: dict[str, Any] = {"memory": res.memory_limit}
    if res.cpu_limit:
        limits["cpu"] = res.cpu_limit
    device = workload.profile.device_resource
    if device and res.devices > 0:
        # Extended resources cannot be overcommitted: request must equal limit.
        requests[device] = res.devices
        limits[device] = res.devices
    return {"requests": requests, "limits": limits}


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        **_timing(period, failures),
    }


def _grpc_probe(*, period: int, failures: int) -> dict[str, Any]:
    # grpc probes take a port number, not a port name
    return {"grpc": {"port": GRPC_PORT, "service": ""}, **_timing(period, failures)}


def _readiness_probe(workload: Workload) -> dict[str, Any]:
    if workload.probes not in PROBES:
        raise DeployError(f"probes {workload.probes!r}: choose one of {', '.join(PROBES)}")
    if workload.probes == "grpc":
        return _grpc_probe(period=5, failures=3)
    return _probe("/v2/health/ready", period=5, failures=3)


def _timing(period: int, failures: int) -> dict[str, Any]:
    return {
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _volumes(workload: Workload) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts): /tmp always (loading a SavedModel needs a temp dir; Keras keeps its
    config there), the engine cache only for runtimes that build one at start."""
    volumes = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    if workload.runtime in _CACHE_RUNTIMES:
        volumes.append({"name": "engine-cache", "emptyDir": {"sizeLimit": "2Gi"}})
        mounts.append({"name": "engine-cache", "mountPath": CACHE_DIR})
    return volumes, mounts


def _container(workload: Workload, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "server",
        "image": workload.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "http", "containerPort": PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
        ],
        "resources": _resources(workload),
        # Startup covers slow loads (TF import, TensorRT engine build) before liveness applies.
        # Liveness stays on HTTP with either readiness probe: gRPC health has no "alive but
        # still loading" answer, and a long load must not look like a dead server.
        "startupProbe": _probe("/v2/health/live", period=5, failures=60),
        "readinessProbe": _readiness_probe(workload),
        "livenessProbe": _probe("/v2/health/live", period=10, failures=3),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }


def _affinity(node: str) -> dict[str, Any]:
    term = {
        "matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]},
        ]
    }
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
        }
    }


def _pod_spec(workload: Workload) -> dict[str, Any]:
    volumes, mounts = _volumes(workload)
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,  # the server never talks to the API server
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": workload.profile.node_selector,
    }
    if workload.node:
        spec["affinity"] = _affinity(workload.node)
    if workload.profile.taint_keys:
        spec["tolerations"] = [
            {"key": key, "operator": "Exists", "effect": "NoSchedule"}
            for key in workload.profile.taint_keys
        ]
    spec["containers"] = [_container(workload, mounts)]
    spec["volumes"] = volumes
    return spec


def deployment_for(workload: Workload) -> dict[str, Any]:
    """The Deployment of one workload; pinned to `workload.node` when it names one."""
    labels = _labels(workload)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(workload),
        "spec": {
            "replicas": workload.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": _selector(workload)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                        "tf2aif.io/variant": workload.variant,
                    },
                },
                "spec": _pod_spec(workload),
            },
        },
    }


def service_for(workload: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(workload),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(workload),
            "ports": [
                {"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
            ],
        },
    }


def kustomization_for(resources: Iterable[str], *, namespace: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
    }
    if namespace:
        data["namespace"] = namespace
    data["resources"] = sorted(resources)
    return data


def manifest_files(
    workloads: Iterable[Workload], *, namespace: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """File name -> documents: `<name>.yaml` (Deployment, Service) per workload + kustomization.

    Checked complete before it is returned (`check_complete`)."""
    workloads = tuple(workloads)
    files = {f"{w.name}.yaml": [deployment_for(w), service_for(w)] for w in workloads}
    if not files:
        raise DeployError("nothing to deploy: no successful variant matched")
    files[KUSTOMIZATION] = [kustomization_for(files, namespace=namespace)]
    files = dict(sorted(files.items()))
    check_complete(workloads, files)
    return files


def check_complete(
    workloads: Iterable[Workload], files: Mapping[str, Iterable[Mapping[str, Any]]]
) -> None:
    """Raise unless every workload has exactly one Deployment and one Service selecting its
    pods, no two objects share a kind and name, and the kustomization lists every file."""
    objects: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for file, documents in files.items():
        for doc in documents if file != KUSTOMIZATION else ():
            objects.setdefault((doc["kind"], doc["metadata"]["name"]), []).append(doc)
    problems = [
        f"{kind} {name!r} written {len(docs)} times"
        for (kind, name), docs in objects.items()
        if len(docs) > 1
    ]
    workloads = tuple(workloads)
    for workload in workloads:
        deployments = objects.get(("Deployment", workload.name), ())
        services = objects.get(("Service", workload.name), ())
        if len(deployments) != 1 or len(services) != 1:
            problems.append(f"variant {workload.variant!r} has no single Deployment and Service")
        elif services[0]["spec"]["selector"] != deployments[0]["spec"]["selector"]["matchLabels"]:
            problems.append(f"the Service of {workload.variant!r} does not select its pods")
    if len(files) != len(workloads) + 1:
        problems.append(f"{len(files)} files for {len(workloads)} variants and a kustomization")
    listed = [doc.get("resources") for doc in files.get(KUSTOMIZATION, ())]
    if listed != [sorted(name for name in files if name != KUSTOMIZATION)]:
        problems.append("the kustomization does not list every manifest file")
    if problems:
        raise DeployError(
            "internal error: the Kubernetes manifests are incomplete, nothing was written: "
            + "; ".join(problems)
        )

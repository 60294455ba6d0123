"""Kubernetes manifests for a placement: one Deployment per server instance, one Service per app.

The Deployment comes from the `tf2aif deploy k8s` writer (tf2aif.deploy.k8s: probes on the Open
Inference Protocol health endpoints, Prometheus scrape annotations, hardened pod, the platform's
node selector and device resource), pinned to the chosen node (required node affinity on
kubernetes.io/hostname), running the chosen variant's image from the build record and requesting
the CPU the model predicts the instance uses and the profile's memory. Apps sharing an instance
get their own Service selecting it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tf2aif.deploy.k8s import GRPC_PORT, PORT, Resources, Workload, deployment_for
from tf2aif.deploy.platforms import profile_for
from tf2aif.deploy.writer import write_files
from tf2aif.errors import DeployError

from .inputs import Node
from .policy import Placement
from .predict import Instance, cpu_work

__all__ = ["SERVER_PORT", "check_complete", "manifests", "stale_files", "write_manifests"]

SERVER_PORT = PORT
_SERVICE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def workload(name: str, node: Node, instance: Instance, image: str) -> Workload:
    """The `tf2aif deploy k8s` workload of one server instance, pinned to its node, requesting
    the CPU the model predicts it uses and the profile's memory."""
    cpu_cores = instance.rate * cpu_work(node, instance.profile)[0]
    memory = math.ceil(instance.profile.memory_mb)
    return Workload(
        name=name,
        model=instance.model,
        variant=instance.variant,
        image=image,
        profile=profile_for(node.platform),
        node=node.name,
        resources=Resources(
            cpu_request=f"{max(50, math.ceil(cpu_cores * 1000))}m",
            memory_request=f"{memory}Mi",
            memory_limit=f"{math.ceil(memory * 1.5)}Mi",
        ),
        extra_labels={"tf2aif.io/placed-by": "tf2aif-place"},
    )


def deployment(
    name: str, node: Node, instance: Instance, image: str, predicted_ms: float
) -> dict[str, Any]:
    doc = deployment_for(workload(name, node, instance, image))
    doc["metadata"].setdefault("annotations", {}).update(
        {
            "tf2aif.io/apps": ",".join(app.name for app in instance.apps),
            "tf2aif.io/rate": f"{instance.rate:g}",
            "tf2aif.io/predicted-mean-ms": f"{predicted_ms:.3f}",
        }
    )
    return doc


def service(app_name: str, instance: str, slo_ms: float) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": app_name,
            "labels": {
                "app.kubernetes.io/managed-by": "tf2aif",
                "app.kubernetes.io/instance": instance,
            },
            "annotations": {"tf2aif.dev/slo-ms": f"{slo_ms:g}"},
        },
        "spec": {
            "selector": {"app.kubernetes.io/instance": instance},
            "ports": [
                {"name": "http", "port": SERVER_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP"},
            ],
        },
    }


def manifests(placement: Placement, nodes: Mapping[str, Node]) -> dict[str, list[dict[str, Any]]]:
    """File name -> documents: `<instance>.yaml` holds the Deployment and its apps' Services.

    Checked complete before it is returned (`check_complete`): nothing placed goes missing.
    """
    by_app = {a.app: a for a in placement.assignments}
    if bad := [a for a in by_app if not _SERVICE_NAME.fullmatch(a)]:
        raise DeployError(
            f"app name(s) {', '.join(map(repr, bad))} cannot name a Kubernetes Service: a"
            " DNS-1035 label starts with a letter and has at most 63 characters; rename them"
            " in the apps file"
        )
    files: dict[str, list[dict[str, Any]]] = {}
    for node_name, name, instance in placement.servers():
        assignment = by_app[instance.apps[0].name]
        docs = [
            deployment(name, nodes[node_name], instance, assignment.image, assignment.mean * 1e3)
        ]
        docs += [service(app.name, name, app.slo * 1e3) for app in instance.apps]
        files[f"{name}.yaml"] = docs
    check_complete(placement, files)
    return files


def check_complete(placement: Placement, files: Mapping[str, list[dict[str, Any]]]) -> None:
    """Raise unless every placed instance has exactly one Deployment, every placed app exactly
    one Service selecting that Deployment's pods, and no two objects share a kind and name."""
    objects: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for documents in files.values():
        for doc in documents:
            objects.setdefault((doc["kind"], doc["metadata"]["name"]), []).append(doc)
    problems = [
        f"{kind} {name!r} written {len(docs)} times"
        for (kind, name), docs in objects.items()
        if len(docs) > 1
    ]
    servers = list(placement.servers())
    if len(files) != len(servers):
        problems.append(f"{len(files)} manifest files for {len(servers)} server instances")
    for _, name, _ in servers:
        if len(objects.get(("Deployment", name), ())) != 1:
            problems.append(f"instance {name!r} has no single Deployment")
    for a in placement.assignments:
        found = objects.get(("Service", a.app), ())
        selects = [
            s for s in found if s["spec"]["selector"] == {"app.kubernetes.io/instance": a.instance}
        ]
        if len(found) != 1 or len(selects) != 1:
            problems.append(
                f"app {a.app!r} has no single Service selecting instance {a.instance!r}"
            )
    deployments = {name for kind, name in objects if kind == "Deployment"}
    if stray := deployments - {name for _, name, _ in servers}:
        problems.append(f"Deployments of no placed instance: {sorted(stray)}")
    if problems:
        raise DeployError(
            "internal error: the placement's Kubernetes manifests are incomplete, nothing was"
            " written: " + "; ".join(problems)
        )


def stale_files(directory: Path, files: Mapping[str, Any]) -> list[Path]:
    """YAML files in `directory` that an earlier placement wrote and this one does not: left
    there, `kubectl apply -f` would still start their servers. Raises when such a file holds
    anything tf2aif did not write, so nothing of the user's is ever removed."""
    import yaml

    if not directory.is_dir():
        return []
    stale, foreign = [], []
    for path in sorted(directory.glob("*.yaml")):
        if path.name in files:
            continue
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        except (yaml.YAMLError, UnicodeDecodeError, OSError):
            docs = None
        ours = bool(docs) and all(
            isinstance(d, dict)
            and isinstance(d.get("metadata"), dict)
            and isinstance(d["metadata"].get("labels"), dict)
            and d["metadata"]["labels"].get("app.kubernetes.io/managed-by") == "tf2aif"
            for d in docs
        )
        (stale if ours else foreign).append(path)
    if foreign:
        raise DeployError(
            f"{directory} holds files tf2aif did not write ({', '.join(p.name for p in foreign)});"
            " placement owns this folder: choose another --out or move them"
        )
    return stale


def write_manifests(directory: Path, files: Mapping[str, list[dict[str, Any]]]) -> list[Path]:
    """Write `files` and remove what an earlier placement left there (see `stale_files`)."""
    for path in stale_files(directory, files):
        path.unlink()
    return write_files(directory, files)

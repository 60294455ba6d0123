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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tf2aif.deploy.k8s import GRPC_PORT, PORT, Resources, Workload, deployment_for
from tf2aif.deploy.platforms import profile_for
from tf2aif.deploy.writer import write_files

from .inputs import Node
from .policy import Placement, instance_name
from .predict import Instance, cpu_work

__all__ = ["SERVER_PORT", "manifests", "write_manifests"]

SERVER_PORT = PORT


def workload(node: Node, instance: Instance, image: str, predicted_ms: float) -> Workload:
    """The `tf2aif deploy k8s` workload of one server instance, pinned to its node, requesting
    the CPU the model predicts it uses and the profile's memory."""
    cpu_cores = instance.rate * cpu_work(node, instance.profile)[0]
    memory = math.ceil(instance.profile.memory_mb)
    return Workload(
        name=instance_name(instance, node),
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


def deployment(node: Node, instance: Instance, image: str, predicted_ms: float) -> dict[str, Any]:
    doc = deployment_for(workload(node, instance, image, predicted_ms))
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
    """File name -> documents: `<instance>.yaml` holds the Deployment and its apps' Services."""
    by_instance = {a.instance: a for a in placement.assignments}
    files: dict[str, list[dict[str, Any]]] = {}
    for node_name, instances in sorted(placement.instances.items()):
        node = nodes[node_name]
        for instance in instances:
            name = instance_name(instance, node)
            assignment = by_instance[name]
            docs = [deployment(node, instance, assignment.image, assignment.mean * 1e3)]
            docs += [service(app.name, name, app.slo * 1e3) for app in instance.apps]
            files[f"{name}.yaml"] = docs
    return files


def write_manifests(directory: Path, files: Mapping[str, list[dict[str, Any]]]) -> list[Path]:
    return write_files(directory, files)

"""Kubernetes manifests for a placement: one Deployment per server instance, one Service per app.

Each Deployment is pinned to its node (required node affinity on kubernetes.io/hostname), runs
the chosen variant's image from the build record, requests the CPU the model predicts it uses
and the profile's memory, probes the Open Inference Protocol health endpoints and carries the
Prometheus scrape annotations. Apps sharing an instance get their own Service selecting it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .inputs import Node
from .policy import Placement, instance_name
from .predict import Instance, cpu_work

__all__ = ["SERVER_PORT", "manifests", "write_manifests"]

SERVER_PORT = 8080
# Accelerator resource each platform's server requests; a time-shared GPU needs the NVIDIA device
# plugin's time-slicing so that several pods may each request one.
DEVICE_RESOURCES = {"gpu": "nvidia.com/gpu", "agx": "nvidia.com/gpu"}


def _labels(instance: Instance, name: str) -> dict[str, str]:
    platform, runtime, precision = instance.variant.split("/")
    return {
        "app.kubernetes.io/name": instance.model,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": "tf2aif",
        "tf2aif.dev/platform": platform,
        "tf2aif.dev/runtime": runtime,
        "tf2aif.dev/precision": precision,
    }


def deployment(node: Node, instance: Instance, image: str, predicted_ms: float) -> dict[str, Any]:
    name = instance_name(instance, node)
    labels = _labels(instance, name)
    cpu_cores = instance.rate * cpu_work(node, instance.profile)[0]
    memory = math.ceil(instance.profile.memory_mb)
    resources: dict[str, Any] = {
        "requests": {"cpu": f"{max(50, math.ceil(cpu_cores * 1000))}m", "memory": f"{memory}Mi"},
        "limits": {"memory": f"{math.ceil(memory * 1.5)}Mi"},
    }
    if node.platform in DEVICE_RESOURCES:
        resources["limits"][DEVICE_RESOURCES[node.platform]] = 1
    probe = {
        "httpGet": {"path": "/v2/health/live", "port": "http"},
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    ready = {
        "httpGet": {"path": "/v2/health/ready", "port": "http"},
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "tf2aif.dev/variant": instance.variant,
                "tf2aif.dev/apps": ",".join(app.name for app in instance.apps),
                "tf2aif.dev/rate": f"{instance.rate:g}",
                "tf2aif.dev/predicted-mean-ms": f"{predicted_ms:.3f}",
            },
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/instance": name}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(SERVER_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {
                                                "key": "kubernetes.io/hostname",
                                                "operator": "In",
                                                "values": [node.name],
                                            }
                                        ]
                                    }
                                ]
                            }
                        }
                    },
                    "containers": [
                        {
                            "name": "server",
                            "image": image,
                            "ports": [{"name": "http", "containerPort": SERVER_PORT}],
                            "resources": resources,
                            "livenessProbe": probe,
                            "readinessProbe": ready,
                        }
                    ],
                },
            },
        },
    }


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
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
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
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, docs in files.items():
        path = directory / file_name
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        written.append(path)
    return written

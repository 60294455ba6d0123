"""Deployment manifests for built images: `tf2aif deploy k8s`.

Library use (for example node-pinned Deployments chosen by placement):

    from tf2aif.deploy import deployment_for, service_for, workload_for
    workload = workload_for(record.name, image_record, "gpu/tensorrt/fp16", node="gpu-7")
    documents = [deployment_for(workload), service_for(workload)]
"""

from __future__ import annotations

from tf2aif.deploy.k8s import (
    Resources,
    Workload,
    deployment_for,
    kustomization_for,
    manifest_files,
    service_for,
    workload_for,
    workload_name,
    workloads_from_record,
)
from tf2aif.deploy.platforms import DEVICES, Device, PlatformProfile, profile_for
from tf2aif.deploy.writer import dump_documents, write_files
from tf2aif.pipeline.record import image_reference, read_record

__all__ = [
    "DEVICES",
    "Device",
    "PlatformProfile",
    "Resources",
    "Workload",
    "deployment_for",
    "dump_documents",
    "image_reference",
    "kustomization_for",
    "manifest_files",
    "profile_for",
    "read_record",
    "service_for",
    "workload_for",
    "workload_name",
    "workloads_from_record",
    "write_files",
]

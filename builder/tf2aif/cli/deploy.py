"""`tf2aif deploy k8s`: Kubernetes manifests (Deployment + Service per variant) from a build record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tf2aif.cli.argtypes import count, dns_label, quantity, resource_name
from tf2aif.deploy.k8s import PROBES, Resources, manifest_files, workloads_from_record
from tf2aif.deploy.platforms import DEFAULT_FPGA_RESOURCE
from tf2aif.deploy.writer import dump_documents, write_files
from tf2aif.pipeline.record import read_record

__all__ = ["add_parsers", "run_k8s"]

DEFAULT_RECORD = "tf2aif-record.json"
DEFAULT_OUT = "deploy/k8s"


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    deploy = subparsers.add_parser("deploy", help="write deployment manifests for the built images")
    targets = deploy.add_subparsers(dest="deploy_target", metavar="TARGET", required=True)
    k8s = targets.add_parser(
        "k8s",
        help="Kubernetes Deployment + Service per variant, and a kustomization.yaml",
        description="Write one <model>-<platform>-<runtime>-<precision>.yaml (Deployment and "
        "Service) per successful variant of the build record, plus kustomization.yaml.",
    )
    k8s.add_argument("--record", type=Path, default=Path(DEFAULT_RECORD), help="build record")
    k8s.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help="output directory")
    k8s.add_argument(
        "--namespace", type=dns_label, help="namespace of every object (and of the kustomization)"
    )
    k8s.add_argument("--replicas", type=count(minimum=1), default=1, help="replicas per variant")
    k8s.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="deploy only variants matching this pattern, e.g. 'cpu/*' (repeatable)",
    )
    k8s.add_argument(
        "--cpu", type=quantity, default=Resources.cpu_request, help="CPU request per replica"
    )
    k8s.add_argument(
        "--memory", type=quantity, default=Resources.memory_request, help="memory request"
    )
    k8s.add_argument(
        "--memory-limit", type=quantity, default=Resources.memory_limit, help="memory limit"
    )
    k8s.add_argument(
        "--fpga-resource",
        type=resource_name,
        default=DEFAULT_FPGA_RESOURCE,
        help="Xilinx device plugin resource for alveo variants (depends on card and shell)",
    )
    k8s.add_argument(
        "--probes",
        choices=PROBES,
        default="http",
        help="readiness probe: HTTP /v2/health/ready, or the gRPC health service on port 8081 "
        "(Kubernetes 1.27+); liveness and startup stay on HTTP",
    )
    k8s.add_argument(
        "--print", action="store_true", help="print the manifests instead of writing files"
    )
    k8s.set_defaults(func=run_k8s)


def run_k8s(args: argparse.Namespace) -> int:
    record = read_record(args.record)
    resources = Resources(
        cpu_request=args.cpu, memory_request=args.memory, memory_limit=args.memory_limit
    )
    workloads, skipped = workloads_from_record(
        record,
        replicas=args.replicas,
        namespace=args.namespace,
        resources=resources,
        only=args.only,
        fpga_resource=args.fpga_resource,
        probes=args.probes,
    )
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    files = manifest_files(workloads, namespace=args.namespace)
    if args.print:
        for name, documents in files.items():
            print(f"# {name}\n{dump_documents(documents)}", end="")
        return 0
    for path in write_files(args.out, files):
        print(path)
    return 0
